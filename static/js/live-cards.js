// Fills in result cards as their jobs end, without reloading: one request per poll for every
// unfinished card on the page, whose answer carries each card's status as the server renders it.
(function () {
  const grid = document.querySelector(".live-cards");
  if (!grid) return;
  const counter = document.getElementById("batch-done");
  let delay = 500;

  function pending() {
    return Array.from(grid.querySelectorAll('[data-result-id][data-finished="false"]'));
  }

  async function poll() {
    const cards = pending();
    if (!cards.length) return;
    const ids = cards.map((card) => card.dataset.resultId).join(",");
    try {
      const response = await fetch(`${grid.dataset.statusUrl}?ids=${ids}`, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const answer = await response.json();
        for (const result of answer.results) {
          const card = grid.querySelector(`[data-result-id="${result.id}"]`);
          if (!card) continue;
          card.querySelector(".card-status").innerHTML = result.html;
          card.dataset.finished = String(result.finished);
        }
        if (counter) counter.textContent = grid.querySelectorAll('[data-finished="true"]').length;
      }
    } catch (error) {
      // A network blip: ask again, a little later.
    }
    delay = Math.min(delay * 1.5, 3000);
    if (pending().length) setTimeout(poll, delay);
  }
  if (pending().length) setTimeout(poll, delay);
})();
