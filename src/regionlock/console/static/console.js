// The console's only script (served from the package; pages work without it).
// - Every <time datetime> in UTC gets the reader's local time beside it.
// - Tables marked data-sortable sort by a column when its heading is pressed.
// - A slider in a form marked data-autosubmit shows its label and opens that day on release.
// - A file input marked data-into reads its file into a textarea.
// - An element with data-poll="URL" is refreshed from that URL's JSON every 2 s while it
//   says it is still moving (a running campaign's progress); when it stops in another state
//   than its data-state, the page is loaded again (its actions are that state's).
"use strict";

function pad(n) { return String(n).padStart(2, "0"); }

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    if (el.querySelector(".local")) continue;
    const at = new Date(el.getAttribute("datetime"));
    if (isNaN(at) || !el.getAttribute("datetime").includes("T")) continue;
    const text = at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) +
      " " + pad(at.getHours()) + ":" + pad(at.getMinutes());
    const span = document.createElement("span");
    span.className = "local";
    span.textContent = " (" + text + " local)";
    el.appendChild(span);
  }
}

function cellValue(row, index) {
  const cell = row.children[index];
  const text = cell ? cell.textContent.trim() : "";
  const number = Number(text.replace(/[,\s%]/g, ""));
  return text !== "" && !isNaN(number) ? number : text.toLowerCase();
}

function sortable(table) {
  const heads = table.querySelectorAll("thead th");
  heads.forEach((th, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = th.textContent;
    th.textContent = "";
    th.appendChild(button);
    button.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = cellValue(a, index), y = cellValue(b, index);
        const order = x < y ? -1 : x > y ? 1 : 0;
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
}

function autosubmit(form) {
  // The slider's value is an index into its labels (days, then "now"); on release, the page
  // of that day (no day: now).
  for (const input of form.querySelectorAll("input[type=range]")) {
    const output = form.querySelector("output[for='" + input.id + "']");
    const labels = JSON.parse(input.dataset.labels || "[]");
    input.addEventListener("input", () => {
      if (output) output.textContent = labels[Number(input.value)] || input.value;
    });
    input.addEventListener("change", () => {
      const label = labels[Number(input.value)];
      const url = new URL(form.action);
      if (label && label !== "now") url.searchParams.set(input.dataset.names, label);
      window.location.assign(url.toString());
    });
  }
}

function poll(el) {
  const url = el.dataset.poll;
  const tick = async () => {
    let data;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      data = await response.json();
    } catch (e) {
      return setTimeout(tick, 5000);
    }
    // The page's actions (Advance, Pause, ...) were rendered for the state it was loaded in:
    // once the campaign stops moving in another one (a stage done, waiting for an operator),
    // the page is loaded again so that the actions match. Loaded in that state, it stays.
    if (!data.moving && data.state !== undefined && el.dataset.state &&
        data.state !== el.dataset.state) {
      window.location.reload();
      return;
    }
    for (const field of el.querySelectorAll("[data-field]")) {
      const value = data[field.dataset.field];
      if (value === undefined) continue;
      if (field.tagName === "PROGRESS") field.value = value;
      else field.textContent = typeof value === "number" ? value.toLocaleString("en") : value;
    }
    if (data.moving) setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  document.querySelectorAll("table[data-sortable]").forEach(sortable);
  document.querySelectorAll("form[data-autosubmit]").forEach(autosubmit);
  document.querySelectorAll("[data-poll]").forEach(poll);
});

// A file input marked data-into="ID" reads the chosen text file into that textarea.
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[type=file][data-into]")) {
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      if (file) document.getElementById(input.dataset.into).value = await file.text();
    });
  }
});
