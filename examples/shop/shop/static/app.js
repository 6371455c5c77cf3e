// flaskprod shop: a little progressive enhancement (the site works without it).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Forms marked data-once disable their button on submit: no accidental double
  // orders (the server's idempotency key makes them harmless anyway).
  for (const form of document.querySelectorAll("form[data-once]")) {
    form.addEventListener("submit", () => {
      for (const button of form.querySelectorAll("button[type=submit]")) {
        button.disabled = true;
      }
    });
  }
});
