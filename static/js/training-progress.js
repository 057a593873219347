// Polls a training job's progress while it runs; the table lists every finished epoch.
(function () {
  const status = document.getElementById("training-status");
  const body = document.querySelector("#training-history tbody");
  const url = status.dataset.progressUrl;
  const columns = ["phase", "epoch", "accuracy", "loss", "val_accuracy", "val_loss"];
  function show(data) {
    status.textContent = data.status + (data.error ? ": " + data.error : "") +
      (data.model_version ? " — published as " + data.model_version : "");
    body.replaceChildren(...data.history.map(function (row) {
      const tr = document.createElement("tr");
      columns.forEach(function (name) {
        const td = document.createElement("td");
        td.textContent = name === "epoch" ? row.epoch + "/" + row.epochs : (row[name] ?? "");
        tr.appendChild(td);
      });
      return tr;
    }));
    if (!data.finished) setTimeout(poll, 2000);
  }
  function poll() { fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(show); }
  poll();
})();
