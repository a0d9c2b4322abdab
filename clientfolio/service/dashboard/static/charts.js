// Draws every <div data-chart="ID"> from the JSON in <script type="application/json" id="ID">.
(function () {
  "use strict";
  function money(prefix, v) {
    return prefix + Number(v).toLocaleString("en", {maximumFractionDigits: v >= 100 ? 0 : 2});
  }
  function draw(el) {
    var spec = JSON.parse(document.getElementById(el.getAttribute("data-chart")).textContent);
    var trace = {x: spec.x, y: spec.y, type: spec.type === "line" ? "scatter" : "bar",
                 mode: spec.type === "line" ? "lines+markers" : undefined, marker: {color: "#1f5f80"}};
    if (spec.money !== undefined) {
      trace.text = spec.y.map(function (v) { return money(spec.money, v); });
      trace.hovertemplate = "%{x}: %{text}<extra></extra>";
      trace.textposition = "none";
    }
    var layout = {margin: {l: 56, r: 10, t: 10, b: 60}, template: "plotly_white", paper_bgcolor: "#fff",
                  plot_bgcolor: "#fff", yaxis: {title: {text: spec.ylabel}, rangemode: "tozero", gridcolor: "#edf0f3",
                  tickprefix: spec.money || ""}, xaxis: {automargin: true}, font: {size: 12}};
    window.Plotly.newPlot(el, [trace], layout, {responsive: true, displayModeBar: false});
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(draw);
  });
})();
