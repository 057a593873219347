// Drag-and-drop onto the upload zone, and a list of the chosen files.
(function () {
  const input = document.querySelector('input[name="images"]');
  const zone = document.getElementById("drop-zone");
  const chosen = document.getElementById("chosen-files");
  if (!input || !zone) return;
  const max = parseInt(input.dataset.maxFiles || "1", 10);

  function show() {
    const names = Array.from(input.files).map((f) => f.name);
    chosen.textContent = names.length > max
      ? `Choose at most ${max} image${max > 1 ? "s" : ""} (${names.length} chosen).`
      : names.join(", ");
  }
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("drop-zone-active");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("drop-zone-active")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    input.files = event.dataTransfer.files;
    show();
  });
})();
