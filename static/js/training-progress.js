// Polls a training job's progress while it runs; the table lists every finished epoch. The
// form's own status field follows the live box, and when the job ends the page reloads once,
// so no field still shows what the job was when the page was opened.
(function () {
  const status = document.getElementById("training-status");
  const body = document.querySelector("#training-history tbody");
  const field = document.querySelector(".field-status .readonly");
  const url = status.dataset.progressUrl;
  const columns = ["phase", "epoch", "accuracy", "loss", "val_accuracy", "val_loss"];
  let wasRunning = null;
  function show(data) {
    status.textContent = data.status + (data.error ? ": " + data.error : "") +
      (data.model_version ? " — published as " + data.model_version : "");
    status.dataset.status = data.status;
    if (field) field.textContent = data.status;
    body.replaceChildren(...data.history.map(function (row) {
      const tr = document.createElement("tr");
      columns.forEach(function (name) {
        const td = document.createElement("td");
        td.textContent = name === "epoch" ? row.epoch + "/" + row.epochs : (row[name] ?? "");
        tr.appendChild(td);
      });
      return tr;
    }));
    if (wasRunning === null) wasRunning = !data.finished;
    if (!data.finished) setTimeout(poll, 2000);
    else if (wasRunning) window.location.reload();
  }
  function poll() { fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(show); }
  poll();
})();
