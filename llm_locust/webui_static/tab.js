// llm-locust: while Locust's "LLM" tab is open, show a link to the LLM charts page (served beside this file).
(function () {
  "use strict";
  var link = document.createElement("a");
  link.id = "llm-locust-charts-link";
  link.href = "./llm/charts";
  link.textContent = "LLM charts \u2197";
  link.style.cssText = "position:fixed;right:24px;bottom:56px;z-index:1300;display:none;padding:8px 16px;" +
    "border-radius:18px;background:#1976d2;color:#fff;font:500 14px system-ui,sans-serif;text-decoration:none;" +
    "box-shadow:0 2px 6px rgba(0,0,0,.3)";
  document.body.appendChild(link);
  function update() {
    var tab = document.querySelector('[role="tab"][aria-selected="true"]');
    link.style.display = tab && tab.textContent.trim() === "LLM" ? "block" : "none";
  }
  new MutationObserver(update).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                       attributeFilter: ["aria-selected"]});
  update();
})();
