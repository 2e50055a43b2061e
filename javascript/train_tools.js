// Train Tools front-end helpers (loaded by the WebUI for every page; keep it small and scoped).
(function () {
    "use strict";
    // Files dropped anywhere on the Dataset tab's upload zone go to the zone's upload button, as if
    // chosen with it. The button is a gr.UploadButton rather than a gr.File on purpose: gradio 3.41's
    // gr.File silently drops its upload event when another event's output arrives while its files are
    // being sent (the page re-renders and re-sets its value), and this tab polls every second.
    function uploadZone(event) {
        const path = event.composedPath ? event.composedPath() : [];
        return path.find((el) => el && el.id === "tt_upload_zone") || null;
    }

    function carriesFiles(event) {
        return !!event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
    }

    document.addEventListener("dragover", (event) => {
        const zone = uploadZone(event);
        if (!zone || !carriesFiles(event)) return;
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        zone.classList.add("tt-drop-hover");
    });

    document.addEventListener("dragleave", (event) => {
        const zone = uploadZone(event);
        if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("tt-drop-hover");
    });

    document.addEventListener("drop", (event) => {
        const zone = uploadZone(event);
        if (!zone || !carriesFiles(event) || !event.dataTransfer.files.length) return;
        event.preventDefault();
        zone.classList.remove("tt-drop-hover");
        const input = zone.querySelector("input[type=file]");
        if (!input) return;
        input.files = event.dataTransfer.files;
        input.dispatchEvent(new Event("change", { bubbles: true }));
    });
})();
