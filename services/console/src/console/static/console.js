// Progressive enhancement only: every screen works without it.
// - Marks the page as scripted (the Update button beside a quantity then appears once the
//   quantity changes, as the help article describes; without scripts it is always there).
"use strict";
document.documentElement.classList.replace("no-js", "js");
document.addEventListener("input", function (event) {
  var field = event.target;
  if (!(field instanceof HTMLInputElement) || !field.dataset.update) return;
  var button = document.getElementById(field.dataset.update);
  if (button) button.removeAttribute("data-pristine");
});
