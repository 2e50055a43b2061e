"""Fake of modules/initialize_util.py: get_gradio_auth_creds() as A1111 1.10 / Forge write it."""


def get_gradio_auth_creds():
    from modules.shared_cmd_options import cmd_opts

    def process_credential_line(s):
        s = s.strip()
        if not s:
            return None
        return tuple(s.split(":", 1))

    if cmd_opts.gradio_auth:
        for cred in cmd_opts.gradio_auth.split(","):
            cred = process_credential_line(cred)
            if cred:
                yield cred
    if cmd_opts.gradio_auth_path:
        with open(cmd_opts.gradio_auth_path, "r", encoding="utf8") as file:
            for line in file.readlines():
                for cred in line.strip().split(","):
                    cred = process_credential_line(cred)
                    if cred:
                        yield cred
