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

    // The status line at the top shows the last message only; every message also goes, newest
    // first, into "Messages" below it, so nothing an action said is lost when the next
    // one speaks (the line is replaced by each action and by the page's own polls).
    const HISTORY_LIMIT = 50;
    let lastNotice = "";

    function recordNotice(status, history) {
        const notice = status.querySelector(".tt-notice");
        const text = notice ? notice.textContent.trim() : "";
        if (!text || text === lastNotice) return;
        lastNotice = text;
        let details = history.querySelector("details.tt-history");
        if (!details) {
            details = document.createElement("details");
            details.className = "tt-history";
            details.innerHTML = "<summary>Messages</summary><ol></ol>";
            history.appendChild(details);
        }
        const list = details.querySelector("ol");
        const item = document.createElement("li");
        item.className = notice.className;
        item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
        list.insertBefore(item, list.firstChild);
        while (list.children.length > HISTORY_LIMIT) list.removeChild(list.lastChild);
        details.querySelector("summary").textContent = `Messages (${list.children.length})`;
    }

    function watchStatus() {
        const root = typeof gradioApp === "function" ? gradioApp() : document;
        const status = root.querySelector("#tt_status");
        const history = root.querySelector("#tt_status_history");
        if (!status || !history) return false;
        new MutationObserver(() => recordNotice(status, history))
            .observe(status, { childList: true, subtree: true, characterData: true });
        recordNotice(status, history);
        return true;
    }

    const waiting = setInterval(() => { if (watchStatus()) clearInterval(waiting); }, 500);
})();
