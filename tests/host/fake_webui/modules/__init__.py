"""A small fake of the WebUI's ``modules`` package for the host adapter's unit tests.

A contract, not a substitute: it mirrors only the names and behaviours that
``/work/shared/reference/webui-extension-api.md`` documents for AUTOMATIC1111 v1.10.1 and Forge
(dfdcbab6) and that the adapter uses, including the traps (reading ``shared.sd_model`` loads a
model; the queue lock is not reentrant; an ``sd_model_checkpoint`` override that is not a known
alias is silently dropped). Whether the real WebUIs behave so is proven by the harness run
(``tests/webui/check_webui.py``), not here. ``forge.make_forge()`` switches ``sd_models`` to
Forge's behaviour.
"""
