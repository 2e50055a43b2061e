// Train Tools front-end helpers (loaded by the WebUI for every page; keep it small and scoped).
(function () {
    "use strict";
    // Reserved for the tab's live-progress helpers.
})();
