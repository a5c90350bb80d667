// Orchard browser helpers shared by every page (inlined by the game server into each HTML page).
"use strict";

const ORCHARD_COLORS = ["#d7263d", "#1b6ac9", "#e08a00", "#7b3fb5"];
const ORCHARD_COLOR_NAMES = ["red", "blue", "orange", "purple"];
const FRUIT_COLORS = ["#9ccc65", "#ffd54f", "#ffb74d", "#ff8a65", "#e57373", "#c2185b"];

function orchardSwapScheme(url) {
  return url.replace(/^http:\/\//i, "ws://").replace(/^https:\/\//i, "wss://");
}

// Page /client/<name>?q -> websocket /<name>?q on the same origin (path prefix kept, query unchanged).
// With ?address=<url>, that URL (scheme-swapped) is used as-is and no other page parameter is merged.
function orchardSocketUrl(wsName) {
  const params = new URLSearchParams(window.location.search);
  const address = params.get("address");
  if (address) {
    return orchardSwapScheme(address);
  }
  const here = window.location;
  const scheme = here.protocol === "https:" ? "wss:" : "ws:";
  const path = here.pathname.replace(/\/client\/[A-Za-z0-9_-]+\/?$/, "/" + wsName);
  return scheme + "//" + here.host + path + here.search;
}

// A "view" is what the drawing code needs:
// {tick, maxTicks, width, height, names, positions: [[x,y]], scores, fruitCounts,
//  trees: [{x, y, value (0 = no ripe fruit), rotIn, ripeIn, nextValue}], harvests: [[slot, tree, share]], done}
function orchardViewFromState(state) {
  return {
    tick: state.tick,
    maxTicks: state.max_ticks,
    width: state.width,
    height: state.height,
    names: state.player_names,
    policyNames: state.policy_names,
    positions: state.positions,
    scores: state.scores,
    fruitCounts: state.fruit_harvested,
    trees: state.trees.map((tree) => {
      const next = tree.upcoming && tree.upcoming.length ? tree.upcoming[0] : null;
      return {
        x: tree.x,
        y: tree.y,
        value: tree.fruit ? tree.fruit.value : 0,
        rotIn: tree.fruit ? tree.fruit.rot - state.tick : null,
        ripeIn: next ? next.ripe - state.tick : null,
        nextValue: next ? next.value : 0,
      };
    }),
    harvests: state.last_harvests || [],
    connected: state.connected || null,
    done: !!state.done,
    started: state.started !== false,
    paused: !!state.paused,
  };
}

function orchardViewFromReplay(replay, index) {
  const frame = replay.frames[index];
  const fruitCounts = replay.player_names.map(() => 0);
  for (let i = 1; i <= index; i++) {
    for (const harvest of replay.frames[i].harvests) {
      fruitCounts[harvest[0]] += 1;
    }
  }
  return {
    tick: frame.tick,
    maxTicks: replay.max_ticks,
    width: replay.width,
    height: replay.height,
    names: replay.player_names,
    policyNames: replay.policy_names,
    positions: frame.positions,
    scores: frame.scores,
    fruitCounts: fruitCounts,
    trees: replay.trees.map((tree, t) => {
      const current = tree.schedule.find((f) => f[0] <= frame.tick && frame.tick < f[1]);
      const next = tree.schedule.find((f) => f[0] > frame.tick);
      return {
        x: tree.x,
        y: tree.y,
        value: frame.fruit[t],
        rotIn: frame.fruit[t] && current ? current[1] - frame.tick : null,
        ripeIn: next ? next[0] - frame.tick : null,
        nextValue: next ? next[2] : 0,
      };
    }),
    harvests: frame.harvests,
    connected: null,
    done: index === replay.frames.length - 1,
    started: true,
    paused: false,
  };
}

function orchardLabel(view, slot) {
  let label = "P" + slot + " " + view.names[slot] + " (" + ORCHARD_COLOR_NAMES[slot] + ")";
  if (view.policyNames && view.policyNames[slot]) {
    label += " [" + view.policyNames[slot] + "]";
  }
  return label;
}

function orchardDraw(canvas, view, highlightSlot) {
  const ctx = canvas.getContext("2d");
  const cell = Math.max(16, Math.floor(Math.min(720 / view.width, 560 / view.height)));
  const width = view.width * cell;
  const height = view.height * cell + 24;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  ctx.fillStyle = "#f3efe0";
  ctx.fillRect(0, 0, width, height);
  ctx.strokeStyle = "#d8d0b8";
  ctx.lineWidth = 1;
  for (let x = 0; x <= view.width; x++) {
    ctx.beginPath();
    ctx.moveTo(x * cell + 0.5, 0);
    ctx.lineTo(x * cell + 0.5, view.height * cell);
    ctx.stroke();
  }
  for (let y = 0; y <= view.height; y++) {
    ctx.beginPath();
    ctx.moveTo(0, y * cell + 0.5);
    ctx.lineTo(width, y * cell + 0.5);
    ctx.stroke();
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const tree of view.trees) {
    const cx = tree.x * cell + cell / 2;
    const cy = tree.y * cell + cell / 2;
    ctx.fillStyle = "#2e7d32";
    ctx.beginPath();
    ctx.arc(cx, cy, cell * 0.42, 0, Math.PI * 2);
    ctx.fill();
    if (tree.value > 0) {
      ctx.fillStyle = FRUIT_COLORS[Math.min(tree.value, FRUIT_COLORS.length - 1)];
      ctx.beginPath();
      ctx.arc(cx, cy, cell * 0.28, 0, Math.PI * 2);
      ctx.fill();
      ctx.fillStyle = "#222";
      ctx.font = "bold " + Math.floor(cell * 0.34) + "px sans-serif";
      ctx.fillText(String(tree.value), cx, cy);
    } else if (tree.ripeIn !== null && tree.ripeIn <= 24) {
      ctx.fillStyle = "#e8f5e9";
      ctx.font = Math.floor(cell * 0.26) + "px sans-serif";
      ctx.fillText(tree.ripeIn + "t", cx, cy);
    }
  }
  const stacked = {};
  view.positions.forEach((pos, slot) => {
    const key = pos[0] + "," + pos[1];
    const k = stacked[key] || 0;
    stacked[key] = k + 1;
    const inset = cell * 0.12 + k * 3;
    ctx.strokeStyle = ORCHARD_COLORS[slot];
    ctx.lineWidth = slot === highlightSlot ? 4 : 3;
    ctx.strokeRect(pos[0] * cell + inset, pos[1] * cell + inset, cell - 2 * inset, cell - 2 * inset);
    ctx.fillStyle = ORCHARD_COLORS[slot];
    ctx.font = "bold " + Math.floor(cell * 0.26) + "px sans-serif";
    ctx.fillText("P" + slot, pos[0] * cell + inset + cell * 0.16, pos[1] * cell + inset + cell * 0.14);
  });
  ctx.fillStyle = "#333";
  ctx.textAlign = "left";
  ctx.font = "14px sans-serif";
  const status = view.done ? "  (finished)" : view.paused ? "  (paused)" : !view.started ? "  (waiting for players)" : "";
  ctx.fillText("tick " + view.tick + " / " + view.maxTicks + status, 6, view.height * cell + 12);
  canvas.dataset.tick = String(view.tick);
  canvas.setAttribute("data-tick", String(view.tick));
}

function orchardScoreboard(element, view) {
  element.textContent = "";
  view.names.forEach((_, slot) => {
    const row = document.createElement("div");
    row.className = "score-row";
    row.dataset.slot = String(slot);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = ORCHARD_COLORS[slot];
    row.appendChild(swatch);
    let text = orchardLabel(view, slot) + ": " + view.scores[slot] + " pts, " + view.fruitCounts[slot] + " fruit";
    if (view.connected && !view.connected[slot]) {
      text += " - disconnected";
    }
    row.appendChild(document.createTextNode(text));
    element.appendChild(row);
  });
}

function orchardConnect(wsName, onMessage, onStatus) {
  let closedForGood = false;
  let socket = null;
  function open() {
    socket = new WebSocket(orchardSocketUrl(wsName));
    socket.onopen = () => onStatus("connected");
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "final" || (message.type === "state" && message.done)) {
        closedForGood = true;
      }
      onMessage(message, socket);
    };
    socket.onclose = () => {
      onStatus(closedForGood ? "episode over" : "disconnected, retrying...");
      if (!closedForGood) {
        setTimeout(open, 1000);
      }
    };
  }
  open();
  return {
    send: (value) => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(value));
      }
    },
  };
}
