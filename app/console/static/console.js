// The console works without this file; it adds live refresh of the deliveries list.
(function () {
  "use strict";
  var INTERVAL = 5000;

  function refresh(box, region, status) {
    if (!box.checked) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) throw new Error("session");
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (fresh) region.innerHTML = fresh.innerHTML;
        status.textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () {
        box.checked = false;
        status.textContent = "Live refresh stopped: reload the page (your session may have ended).";
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("live");
    if (!box) return;
    var region = document.getElementById(box.getAttribute("data-live-target"));
    var status = document.getElementById("live-status");
    var key = "console-live-refresh";
    box.checked = window.sessionStorage.getItem(key) === "on";
    box.addEventListener("change", function () {
      window.sessionStorage.setItem(key, box.checked ? "on" : "off");
      status.textContent = box.checked ? "Live refresh on." : "Live refresh off.";
      refresh(box, region, status);
    });
    window.setInterval(function () { refresh(box, region, status); }, INTERVAL);
  });
})();
