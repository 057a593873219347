// Polls the result's status until it is finished and renders it, without reloading the page.
(function () {
  const root = document.getElementById("result");
  if (!root) return;
  const labels = { queued: "queued", running: "running", done: "done", failed: "failed" };
  const colours = { queued: "text-bg-secondary", running: "text-bg-info", done: "text-bg-success", failed: "text-bg-danger" };

  function bars(list, predictions) {
    list.replaceChildren(...predictions.map((p) => {
      const item = document.createElement("li");
      item.className = "mb-2";
      const percent = (p.probability * 100).toFixed(1);
      const name = document.createElement("div");
      name.className = "d-flex justify-content-between small";
      name.append(Object.assign(document.createElement("span"), { textContent: p.label }),
                  Object.assign(document.createElement("span"), { textContent: `${percent}%` }));
      const bar = document.createElement("div");
      bar.className = "progress";
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-label", p.label);
      bar.setAttribute("aria-valuenow", percent);
      const fill = document.createElement("div");
      fill.className = "progress-bar";
      fill.style.width = `${percent}%`;
      bar.append(fill);
      item.append(name, bar);
      return item;
    }));
  }

  function render(r) {
    const badge = document.getElementById("status-badge");
    badge.textContent = labels[r.status] || r.status;
    badge.className = `badge ${colours[r.status] || ""}`;
    badge.dataset.status = r.status;
    document.getElementById("pending").hidden = r.finished;
    document.getElementById("failed").hidden = r.status !== "failed";
    document.getElementById("error").textContent = r.error;
    document.getElementById("done").hidden = r.status !== "done";
    if (r.status === "done") {
      document.getElementById("top-label").textContent = r.top_label;
      document.getElementById("none-known").hidden = !r.out_of_distribution;
      document.getElementById("most-likely").hidden = r.out_of_distribution;
      document.getElementById("uncertain").hidden = !r.uncertain || r.out_of_distribution;
      bars(document.getElementById("top-predictions"), r.predictions);
      bars(document.getElementById("all-predictions"), r.all_predictions);
      document.getElementById("model-version").textContent = r.model_version;
      document.getElementById("class-count").textContent = r.all_predictions.length;
      document.getElementById("heatmap-control").hidden = false;
      document.getElementById("duration").textContent = r.duration_ms ? `${Math.round(r.duration_ms)} ms` : "";
    }
  }

  // The heatmap is made on first request: 202 means ask again after Retry-After seconds.
  const image = document.getElementById("result-image");
  const note = document.getElementById("heatmap-note");
  let heatmapUrl = null;
  async function showHeatmap(attempt) {
    const response = await fetch(image.dataset.heatmapUrl, { headers: { Accept: "image/jpeg, application/json" } });
    if (response.status === 200) {
      heatmapUrl = URL.createObjectURL(await response.blob());
      note.textContent = "";
      if (document.getElementById("heatmap-toggle").checked) image.src = heatmapUrl;
    } else if (response.status === 202 && attempt < 60) {
      note.textContent = "Making the heatmap…";
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      setTimeout(() => showHeatmap(attempt + 1), seconds * 1000);
    } else {
      const body = await response.json().catch(() => ({}));
      note.textContent = body.detail || "No heatmap is available.";
    }
  }
  document.getElementById("heatmap-toggle").addEventListener("change", (event) => {
    if (!event.target.checked) { image.src = image.dataset.imageUrl; return; }
    if (heatmapUrl) image.src = heatmapUrl; else showHeatmap(0).catch(() => { note.textContent = "The heatmap could not be loaded."; });
  });

  let delay = 500;
  async function poll() {
    try {
      const response = await fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const r = await response.json();
        render(r);
        if (r.finished) return;
      }
    } catch (error) { /* the network blipped: try again */ }
    delay = Math.min(delay * 1.5, 5000);
    setTimeout(poll, delay);
  }
  const initial = JSON.parse(document.getElementById("initial-result").textContent);
  render(initial);
  if (!initial.finished) setTimeout(poll, delay);
})();
