// Switchboard dashboard: live parts re-read every poll interval, confirmation of destructive forms,
// and the theme toggle. Works without it too (every page and action is plain HTML and forms).
"use strict";

(function () {
  const root = document.documentElement;
  const stored = localStorage.getItem("sb-theme");
  if (stored) root.dataset.theme = stored;

  function currentTheme() {
    if (root.dataset.theme) return root.dataset.theme;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function labelToggle(button) {
    const dark = currentTheme() === "dark";
    button.textContent = dark ? "Light theme" : "Dark theme";
    button.setAttribute("aria-pressed", String(dark));
  }

  function confirmForms(scope) {
    scope.querySelectorAll("form[data-confirm]").forEach(function (form) {
      if (form.dataset.bound) return;
      form.dataset.bound = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  // Leave the live part alone while the operator is using it: a ticked box or a focused field.
  function busy(live) {
    if (live.querySelector("input[type=checkbox]:checked")) return true;
    const active = document.activeElement;
    return active && live.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  async function refresh(live) {
    if (document.hidden || busy(live)) return;
    const response = await fetch(window.location.href, {
      headers: { "X-Dashboard-Live": "1" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!response.ok) return;
    const html = await response.text();
    if (!busy(live)) {
      live.innerHTML = html;
      confirmForms(live);
      live.dataset.refreshed = String(Date.now());
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const button = document.getElementById("theme-toggle");
    if (button) {
      labelToggle(button);
      button.addEventListener("click", function () {
        root.dataset.theme = currentTheme() === "dark" ? "light" : "dark";
        localStorage.setItem("sb-theme", root.dataset.theme);
        labelToggle(button);
      });
    }
    confirmForms(document);
    const live = document.querySelector("[data-live]");
    const interval = Number(document.body.dataset.pollMs || 2000);
    if (live) {
      const tick = function () {
        refresh(live).catch(function () {}).finally(function () { setTimeout(tick, interval); });
      };
      setTimeout(tick, interval);
    }
  });
})();
