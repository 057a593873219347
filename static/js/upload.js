// The upload form: files chosen, dropped, pasted (Ctrl/Cmd-V) or taken with a phone's camera
// gather in one list, shown as thumbnails that can be removed before sending.
(function () {
  const input = document.querySelector('input[name="images"]');
  const zone = document.getElementById("drop-zone");
  const previews = document.getElementById("previews");
  const note = document.getElementById("chosen-files");
  const camera = document.getElementById("camera-input");
  if (!input || !zone) return;
  const max = parseInt(input.dataset.maxFiles || "1", 10);
  let chosen = Array.from(input.files);

  function sync() {
    const transfer = new DataTransfer();
    chosen.forEach((file) => transfer.items.add(file));
    input.files = transfer.files;
    note.textContent = chosen.length
      ? `${chosen.length} image${chosen.length > 1 ? "s" : ""} chosen`
      : "";
    previews.replaceChildren(...chosen.map((file, index) => {
      const item = document.createElement("li");
      item.className = "preview";
      const image = document.createElement("img");
      image.src = URL.createObjectURL(file);
      image.alt = file.name;
      image.onload = () => URL.revokeObjectURL(image.src);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-sm btn-light preview-remove";
      remove.setAttribute("aria-label", `Remove ${file.name}`);
      remove.textContent = "×";
      remove.addEventListener("click", () => {
        chosen.splice(index, 1);
        sync();
        input.focus();
      });
      const name = document.createElement("span");
      name.className = "preview-name small text-truncate";
      name.textContent = file.name;
      item.append(image, remove, name);
      return item;
    }));
  }

  function add(files) {
    const images = Array.from(files).filter((file) => file.type.startsWith("image/"));
    if (!images.length) return;
    // One image for a visitor without an account: a new one replaces it.
    chosen = max === 1 ? images.slice(0, 1) : chosen.concat(images);
    if (chosen.length > max) {
      chosen = chosen.slice(0, max);
      note.textContent = `At most ${max} images at once: the first ${max} are kept.`;
    }
    sync();
  }

  input.addEventListener("change", () => {
    chosen = [];
    add(input.files);
  });
  if (camera) camera.addEventListener("change", () => add(camera.files));
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("drop-zone-active");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("drop-zone-active")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    add(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = Array.from(event.clipboardData.items)
      .filter((item) => item.kind === "file" && item.type.startsWith("image/"))
      .map((item, index) => {
        const file = item.getAsFile();
        const extension = file.type.split("/")[1] || "png";
        // Screenshots on the clipboard come without a useful name.
        return new File([file], file.name && file.name !== "image.png" ? file.name : `pasted-${Date.now()}-${index}.${extension}`, { type: file.type });
      });
    if (files.length) {
      event.preventDefault();
      add(files);
    }
  });
})();
