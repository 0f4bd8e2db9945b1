// The Nexus web console: sign-in, the sidebar, the command box, the live task view, settings.
// Plain ES modules, no build step; it talks to the gateway over Connect JSON and SSE only.

import { RpcError, artifactBlob, auth, call, signIn, signOut, signUp } from "./api.js";
import { clear, h, icon, relativeTime, bytes } from "./dom.js";
import { artifactsOf, renderPayload, showArtifact } from "./render.js";
import { cachedEvents, follow } from "./stream.js";

const app = document.getElementById("app");
const state = { me: null, commands: [], agents: new Map(), cleanup: null, sidebar: null };

const STATUS = {
  TASK_STATUS_QUEUED: ["queued", "Queued"],
  TASK_STATUS_RUNNING: ["running", "Running"],
  TASK_STATUS_WAITING_INPUT: ["waiting_input", "Needs your answer"],
  TASK_STATUS_FINISHED: ["finished", "Finished"],
  TASK_STATUS_FAILED: ["failed", "Failed"],
  TASK_STATUS_CANCELLED: ["cancelled", "Cancelled"],
};
const STATUS_LABELS = Object.fromEntries(Object.values(STATUS));
const TERMINAL = new Set(["finished", "failed", "cancelled"]);
const short = (status) => (STATUS[status] || [String(status || "").toLowerCase()])[0];

// -- small pieces ---------------------------------------------------------------------------------

function toast(message, kind = "info") {
  let shelf = document.querySelector(".toasts");
  if (!shelf) document.body.append((shelf = h("div", { class: "toasts", role: "status", "aria-live": "polite" })));
  const item = h("div", { class: `toast ${kind}` }, message);
  shelf.append(item);
  setTimeout(() => item.classList.add("leaving"), 3800);
  setTimeout(() => item.remove(), 4300);
}

function failed(error) {
  toast(error instanceof RpcError || error.message ? error.message : String(error), "error");
}

function statusPill(status, testid) {
  const name = short(status);
  return h("span", { class: `pill status-${name}`, "data-testid": testid, dataset: { status: name } }, h("i", { class: "dot" }), STATUS_LABELS[name] || name);
}

function avatar(name, url, size = "") {
  const initial = (name || "?").trim().charAt(0).toUpperCase() || "?";
  const letter = () => h("span", { class: `avatar ${size}`, "aria-hidden": "true" }, initial);
  if (!url) return letter();
  // A picture that does not load (offline, gone) falls back to the initial.
  const img = h("img", { class: `avatar ${size}`, src: url, alt: "", referrerpolicy: "no-referrer" });
  img.addEventListener("error", () => img.replaceWith(letter()), { once: true });
  return img;
}

function emptyState(title, text, action) {
  return h("div", { class: "empty" }, h("div", { class: "empty-art" }, icon("bolt", 22)), h("h3", {}, title), h("p", {}, text), action || null);
}

function fieldErrors(form, error) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  const violations = error instanceof RpcError ? error.violations : {};
  let shown = false;
  for (const [field, description] of Object.entries(violations)) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(field.split(".").pop())}"]`);
    if (slot) {
      slot.textContent = description;
      shown = true;
    }
  }
  const banner = form.querySelector(".form-error");
  if (banner) banner.textContent = shown ? "" : error.message;
}

function field(label, input, name, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "field-hint" }, hint) : null, h("span", { class: "field-error", dataset: { errorFor: name } }));
}

function busy(button, on) {
  button.disabled = on;
  button.classList.toggle("busy", on);
}

function applyTheme(preferences) {
  const theme = (preferences && preferences.theme) || "system";
  document.documentElement.dataset.theme = theme;
}

// -- sign-in ----------------------------------------------------------------------------------------

function renderAuth(mode = "signin") {
  cleanup();
  document.title = "Sign in · Nexus";
  const signingUp = mode === "signup";
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true, "data-testid": "auth-email", placeholder: "you@company.com" });
  const password = h("input", { type: "password", name: "password", autocomplete: signingUp ? "new-password" : "current-password", required: true, "data-testid": "auth-password", placeholder: signingUp ? "At least 10 characters" : "" });
  const nickname = h("input", { type: "text", name: "nickname", autocomplete: "nickname", "data-testid": "auth-nickname", placeholder: "How agents address you" });
  const submit = h("button", { class: "button primary wide", type: "submit", "data-testid": "auth-submit" }, signingUp ? "Create account" : "Sign in");
  const form = h(
    "form",
    { class: "auth-form", novalidate: true },
    field("Email", email, "email"),
    field("Password", password, "password"),
    signingUp ? field("Name", nickname, "nickname", "Optional") : null,
    h("p", { class: "form-error", role: "alert" }),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    busy(submit, true);
    try {
      if (signingUp) await signUp(email.value.trim(), password.value, nickname.value.trim());
      else await signIn(email.value.trim(), password.value);
      await renderShell();
    } catch (error) {
      fieldErrors(form, error);
    } finally {
      busy(submit, false);
    }
  });
  clear(
    app,
    h(
      "div",
      { class: "auth" },
      h(
        "div",
        { class: "auth-card" },
        h("div", { class: "brand big" }, h("img", { src: "/console/logo.svg", alt: "" }), "Nexus"),
        h("h1", {}, signingUp ? "Create your account" : "Welcome back"),
        h("p", { class: "muted" }, signingUp ? "Your agents, skills and tasks in one place." : "Sign in to pick up where your agents left off."),
        form,
        h(
          "p",
          { class: "auth-switch" },
          signingUp ? "Already have an account? " : "New to Nexus? ",
          h("a", { href: "#", "data-testid": "auth-switch", onclick: (e) => (e.preventDefault(), renderAuth(signingUp ? "signin" : "signup")) }, signingUp ? "Sign in" : "Create an account"),
        ),
      ),
      h("aside", { class: "auth-side" }, h("h2", {}, "Every step, live."), h("p", {}, "Run a slash command, watch the plan unfold, answer when an agent asks, and pick up any stream exactly where it left off.")),
    ),
  );
  email.focus();
}

// -- the shell ----------------------------------------------------------------------------------------

async function renderShell() {
  const me = await call("GetMe", {});
  state.me = me;
  applyTheme(me.profile && me.profile.preferences);
  const sidebar = h("aside", { class: "sidebar", "data-testid": "sidebar" });
  const main = h("main", { class: "main", id: "main", tabindex: "-1" });
  clear(app, h("div", { class: "shell" }, sidebar, main));
  state.sidebar = sidebar;
  await Promise.all([refreshSidebar(), loadAgents()]);
  route();
}

async function loadAgents() {
  try {
    const page = await call("ListAgents", { pageSize: 100 });
    for (const agent of page.agents || []) state.agents.set(agent.id, agent);
  } catch {
    // names are a nicety: the ids still show
  }
}

function taskLink(task) {
  const current = location.hash === `#/task/${task.taskId}`;
  return h(
    "a",
    { class: `nav-item${current ? " current" : ""}`, href: `#/task/${task.taskId}`, "data-testid": "sidebar-task", dataset: { taskId: task.taskId } },
    h("i", { class: `dot status-${short(task.status)}`, title: STATUS_LABELS[short(task.status)] || "" }),
    h("span", { class: "nav-title" }, task.title || "Untitled task"),
    h("span", { class: "nav-meta" }, relativeTime(task.lastActiveTime || task.createTime)),
  );
}

function section(title, testid, items, empty, extra) {
  return h(
    "section",
    { class: "nav-section", "data-testid": testid },
    h("h2", { class: "nav-heading" }, title, extra || null),
    items.length ? items : h("p", { class: "nav-empty" }, empty),
  );
}

export async function refreshSidebar() {
  const sidebar = state.sidebar;
  if (!sidebar) return;
  let data;
  let sessions = [];
  try {
    [data, sessions] = await Promise.all([
      call("GetSidebar", { recentPageSize: 30 }),
      call("ListSessions", { pageSize: 20 }).then((page) => page.sessions || []),
    ]);
  } catch (error) {
    failed(error);
    return;
  }
  const me = state.me || {};
  const nickname = (me.profile && me.profile.nickname) || (me.user && me.user.email) || "";
  const newSession = h("button", { class: "icon-button", title: "New session", "aria-label": "New session", onclick: createSession }, icon("plus", 14));
  clear(
    sidebar,
    h("div", { class: "sidebar-top" }, h("a", { class: "brand", href: "#/" }, h("img", { src: "/console/logo.svg", alt: "" }), "Nexus"), h("a", { class: "button primary small", href: "#/", "data-testid": "new-task" }, icon("plus", 14), "New task")),
    h(
      "nav",
      { class: "sidebar-scroll", "aria-label": "Tasks" },
      section("Pinned", "sidebar-pinned", (data.pinnedTasks || []).map(taskLink), "Pin a task to keep it here."),
      section("Recent", "sidebar-recent", (data.recentTasks || []).map(taskLink), "Tasks you run appear here."),
      section(
        "Sessions",
        "sidebar-sessions",
        sessions.map((s) => h("a", { class: "nav-item", href: `#/session/${s.sessionId}` }, icon("folder", 14), h("span", { class: "nav-title" }, s.title || "Untitled session"))),
        "Group related tasks in a session.",
        newSession,
      ),
      section(
        "Pinned artifacts",
        "sidebar-artifacts",
        (data.pinnedArtifacts || []).map((a) => h("button", { class: "nav-item", type: "button", onclick: () => openArtifact(a) }, icon("file", 14), h("span", { class: "nav-title" }, a.displayName))),
        "Pinned reports and files show here.",
      ),
      h("a", { class: "nav-item archive-link", href: "#/archive", "data-testid": "open-archive" }, icon("archive", 14), h("span", { class: "nav-title" }, "Archive")),
    ),
    h(
      "div",
      { class: "sidebar-user" },
      avatar(nickname, me.profile && me.profile.avatarUrl),
      h("div", { class: "user-text" }, h("strong", { "data-testid": "user-name" }, nickname), h("span", {}, (me.user && me.user.email) || "")),
      h("a", { class: "icon-button", href: "#/settings", title: "Settings", "aria-label": "Settings", "data-testid": "open-settings" }, icon("settings")),
      h("button", { class: "icon-button", title: "Sign out", "aria-label": "Sign out", "data-testid": "sign-out", onclick: doSignOut }, icon("logout")),
    ),
  );
}

let sidebarTimer = null;
// Status changes arrive in bursts; the sidebar follows within a moment, once.
function sidebarSoon() {
  clearTimeout(sidebarTimer);
  sidebarTimer = setTimeout(refreshSidebar, 400);
}

async function createSession() {
  const title = prompt("Name the new session");
  if (!title || !title.trim()) return;
  try {
    const session = await call("CreateSession", { title: title.trim(), requestId: crypto.randomUUID() });
    await refreshSidebar();
    location.hash = `#/session/${session.sessionId}`;
  } catch (error) {
    failed(error);
  }
}

async function doSignOut() {
  cleanup();
  try {
    await signOut();
  } catch {
    // signed out locally either way
  }
  location.hash = "";
  renderAuth();
}

function cleanup() {
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
}

// -- routing ------------------------------------------------------------------------------------------

function route() {
  if (!auth.signedIn) return renderAuth();
  const main = document.getElementById("main");
  if (!main) return;
  cleanup();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  for (const link of document.querySelectorAll(".nav-item.current")) link.classList.remove("current");
  const current = document.querySelector(`.nav-item[href="${CSS.escape(location.hash)}"]`);
  if (current) current.classList.add("current");
  const view =
    parts[0] === "task" && parts[1]
      ? taskView(main, parts[1])
      : parts[0] === "settings"
        ? settingsView(main, parts[1] || "profile", parts[2])
        : parts[0] === "archive"
          ? archiveView(main)
          : parts[0] === "session" && parts[1]
            ? sessionView(main, parts[1])
            : homeView(main);
  Promise.resolve(view).catch((error) => {
    if (error instanceof RpcError && error.code === "not_found") {
      clear(main, emptyState("Not found", "It does not exist, or it is not yours.", h("a", { class: "button", href: "#/" }, "Back to start")));
    } else failed(error);
  });
}

// -- the command box -----------------------------------------------------------------------------------

async function allCommands() {
  if (!state.commands.length) state.commands = (await call("CompleteCommand", { prefix: "", pageSize: 100 })).commands || [];
  return state.commands;
}

function commandBox({ sessionId = "", autofocus = true } = {}) {
  const input = h("input", { class: "command-input", type: "text", autocomplete: "off", spellcheck: "false", "data-testid": "command-input", "aria-label": "Command", placeholder: "Type / for commands — /scan https://example.com" });
  const list = h("ul", { class: "completions", role: "listbox", "data-testid": "completions", hidden: true });
  const usage = h("div", { class: "usage", "data-testid": "command-usage" });
  const error = h("div", { class: "command-error", role: "alert", "data-testid": "command-error" });
  const run = h("button", { class: "button primary", type: "submit", "data-testid": "command-run" }, icon("send", 14), "Run");
  let options = [];
  let active = -1;
  let timer = null;

  const agentName = (id) => (state.agents.get(id) || {}).name || id;
  const showUsage = () => {
    const trigger = input.value.trim().split(/\s+/)[0];
    const match = state.commands.find((c) => c.trigger === trigger) || options.find((c) => c.trigger === trigger);
    clear(usage, match ? [h("span", { class: "usage-agent" }, avatar(agentName(match.agentId), (state.agents.get(match.agentId) || {}).avatarUrl, "tiny"), agentName(match.agentId)), h("span", { class: "usage-text" }, match.description || match.trigger)] : []);
  };
  const choose = (command) => {
    input.value = `${command.trigger} `;
    list.hidden = true;
    showUsage();
    input.focus();
  };
  const paint = () => {
    clear(
      list,
      options.map((command, i) =>
        h(
          "li",
          { role: "option", class: i === active ? "active" : "", "aria-selected": i === active ? "true" : "false", "data-testid": "completion", dataset: { trigger: command.trigger }, onmousedown: (e) => (e.preventDefault(), choose(command)) },
          h("span", { class: "completion-trigger" }, command.trigger),
          h("span", { class: "completion-usage" }, command.description || ""),
          h("span", { class: "completion-agent" }, agentName(command.agentId)),
        ),
      ),
    );
    list.hidden = options.length === 0;
  };
  const complete = async () => {
    const text = input.value;
    if (!text.startsWith("/") || /\s/.test(text)) {
      list.hidden = true;
      showUsage();
      return;
    }
    try {
      const reply = await call("CompleteCommand", { prefix: text, pageSize: 8 });
      if (input.value !== text) return;
      options = reply.commands || [];
      active = options.length ? 0 : -1;
      paint();
    } catch (err) {
      options = [];
      paint();
    }
  };
  input.addEventListener("input", () => {
    error.textContent = "";
    clearTimeout(timer);
    timer = setTimeout(complete, 90);
    showUsage();
  });
  input.addEventListener("keydown", (event) => {
    if (list.hidden || !options.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      active = (active + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
      paint();
    } else if ((event.key === "Tab" || event.key === "Enter") && active >= 0) {
      event.preventDefault();
      choose(options[active]);
    } else if (event.key === "Escape") list.hidden = true;
  });
  input.addEventListener("blur", () => setTimeout(() => (list.hidden = true), 100));
  const form = h("form", { class: "command-box" }, h("div", { class: "command-row" }, h("span", { class: "command-glyph" }, icon("bolt", 16)), input, run), list, usage, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    busy(run, true);
    try {
      const task = text.startsWith("/")
        ? await call("RunCommand", { text, sessionId, requestId: crypto.randomUUID() })
        : await call("StartChat", { agentId: "assistant_v1", text, sessionId, requestId: crypto.randomUUID() });
      input.value = "";
      refreshSidebar();
      location.hash = `#/task/${task.taskId}`;
    } catch (err) {
      const violations = err instanceof RpcError ? Object.entries(err.violations) : [];
      clear(error, violations.length ? violations.map(([f, d]) => h("div", {}, h("strong", {}, f), " ", d)) : err.message);
    } finally {
      busy(run, false);
    }
  });
  allCommands().then(showUsage).catch(() => {});
  if (autofocus) setTimeout(() => input.focus(), 0);
  return { form, input };
}

// -- home --------------------------------------------------------------------------------------------------

async function homeView(main) {
  document.title = "Nexus";
  const me = state.me || {};
  const name = (me.profile && me.profile.nickname) || "there";
  const hour = new Date().getHours();
  const greeting = hour < 12 ? "Good morning" : hour < 18 ? "Good afternoon" : "Good evening";
  const box = commandBox();
  const gallery = h("div", { class: "command-gallery", "data-testid": "command-gallery" });
  clear(
    main,
    h(
      "div",
      { class: "home" },
      h("h1", { class: "home-title" }, `${greeting}, ${name}.`),
      h("p", { class: "home-sub muted" }, "What should your agents work on? Start with a slash command."),
      box.form,
      h("h2", { class: "section-title" }, "Commands you can run"),
      gallery,
    ),
  );
  const commands = await allCommands();
  clear(
    gallery,
    commands.length
      ? commands.map((command) => {
          const agent = state.agents.get(command.agentId) || {};
          return h(
            "button",
            { class: "command-card", type: "button", onclick: () => ((box.input.value = `${command.trigger} `), box.input.dispatchEvent(new Event("input")), box.input.focus()) },
            h("div", { class: "command-card-head" }, avatar(agent.name || command.agentId, agent.avatarUrl, "small"), h("code", {}, command.trigger)),
            h("p", {}, command.description || ""),
            h("span", { class: "muted small" }, agent.name || command.agentId),
          );
        })
      : emptyState("No commands yet", "An operator loads the catalog with `nexus catalog load`."),
  );
}

// -- a task, live -------------------------------------------------------------------------------------------

function planView() {
  const bar = h("div", { class: "plan-fill" });
  const count = h("span", { class: "plan-count", "data-testid": "plan-count" });
  const steps = h("ol", { class: "plan-steps", "data-testid": "plan-steps" });
  const el = h("section", { class: "plan", "data-testid": "plan", hidden: true }, h("div", { class: "plan-head" }, h("h2", {}, "Plan"), count), h("div", { class: "plan-track" }, bar), steps);
  let current = [];
  const paint = () => {
    el.hidden = current.length === 0;
    const done = current.filter((s) => s.status === "done" || s.status === "skipped").length;
    count.textContent = `${done} of ${current.length} steps`;
    bar.style.width = `${current.length ? (100 * done) / current.length : 0}%`;
    clear(
      steps,
      current.map((s) => h("li", { class: `plan-step step-${s.status}`, dataset: { status: s.status, step: s.id } }, h("i", { class: "step-mark" }, s.status === "done" ? icon("check", 12) : s.status === "failed" ? icon("x", 12) : ""), h("span", {}, s.title || s.id))),
    );
  };
  return {
    el,
    apply(meta) {
      if (meta.change === "set" && Array.isArray(meta.steps)) {
        current = meta.steps.map((s) => ({ id: String(s.id || ""), title: String(s.title || ""), status: String(s.status || "pending") }));
      } else if (meta.change === "step") {
        for (const s of current) if (s.id === meta.step_id) s.status = String(meta.status || s.status);
      }
      paint();
    },
  };
}

const ROUTINE_REASONS = new Set(["created", "claimed", "input_provided"]);

async function taskView(main, taskId) {
  let task = await call("GetTask", { taskId });
  document.title = `${task.title || "Task"} · Nexus`;
  const agent = state.agents.get(task.agentId) || { name: task.agentId };
  const status = h("span", { class: "status-slot" });
  const connection = h("span", { class: "connection", "data-testid": "stream-state" });
  const pin = h("button", { class: "button ghost small", "data-testid": "pin-task" });
  const archive = h("button", { class: "button ghost small", "data-testid": "archive-task" });
  const cancel = h("button", { class: "button danger-ghost small", "data-testid": "cancel-task" }, icon("stop", 14), "Cancel");
  const plan = planView();
  const timeline = h("ol", { class: "timeline", "data-testid": "timeline", "aria-live": "polite" });
  const composer = h("div", { class: "composer", "data-testid": "composer", hidden: true });
  const statusZone = h("div", { class: "zone zone-status", "data-testid": "zone-status" });
  const canvasZone = h("div", { class: "zone zone-canvas", "data-testid": "zone-canvas" });
  const artifactList = h("ul", { class: "artifact-list", "data-testid": "artifacts" });
  const context = artifactsOf(taskId);
  const deltas = new Map();

  const paintHeader = () => {
    clear(status, statusPill(task.status, "task-status"));
    clear(pin, icon("pin", 14), task.isPinned ? "Unpin" : "Pin");
    pin.dataset.pinned = task.isPinned ? "true" : "false";
    clear(archive, icon(task.isArchived ? "restore" : "archive", 14), task.isArchived ? "Restore" : "Archive");
    cancel.hidden = TERMINAL.has(short(task.status));
  };
  const update = async (mask, values) => {
    try {
      task = await call("UpdateTask", { task: { taskId, ...values }, updateMask: mask });
      paintHeader();
      refreshSidebar();
    } catch (error) {
      failed(error);
    }
  };
  pin.addEventListener("click", () => update("isPinned", { isPinned: !task.isPinned }));
  archive.addEventListener("click", () => update("isArchived", { isArchived: !task.isArchived }));
  cancel.addEventListener("click", async () => {
    if (!confirm("Cancel this task? The agent stops and the task ends as cancelled.")) return;
    try {
      task = await call("CancelTask", { taskId, reason: "cancelled from the console" });
      paintHeader();
    } catch (error) {
      failed(error);
    }
  });

  const refreshArtifacts = async () => {
    context.changed();
    let artifacts = [];
    try {
      artifacts = await context.artifacts();
    } catch {
      return;
    }
    clear(
      artifactList,
      artifacts.length
        ? artifacts.map((a) =>
            h(
              "li",
              { class: "artifact", "data-testid": "artifact", dataset: { artifactId: a.artifactId } },
              h("span", { class: "artifact-icon" }, icon("file", 16)),
              h("div", { class: "artifact-text" }, h("strong", {}, a.displayName), h("span", { class: "muted small" }, `${a.type || "file"} · ${bytes(a.sizeBytes)}`)),
              h("button", { class: "icon-button", title: "Open", "aria-label": "Open", "data-testid": "artifact-open", onclick: () => openArtifact(a) }, icon("open")),
              h("button", { class: "icon-button", title: "Download", "aria-label": "Download", "data-testid": "artifact-download", onclick: () => downloadArtifact(a) }, icon("download")),
              h("button", { class: `icon-button${a.isPinned ? " on" : ""}`, title: a.isPinned ? "Unpin" : "Pin", "aria-label": a.isPinned ? "Unpin" : "Pin", "data-testid": "artifact-pin", onclick: () => pinArtifact(a).then(refreshArtifacts) }, icon("pin")),
            ),
          )
        : h("li", { class: "muted small empty-line" }, "No files yet."),
    );
  };

  const showComposer = (waiting) => {
    composer.hidden = !waiting;
    if (!waiting) return;
    if (composer.childElementCount) return;
    const answer = h("textarea", { rows: 2, placeholder: "Type your answer…", "data-testid": "answer-input", "aria-label": "Your answer" });
    const send = h("button", { class: "button primary", type: "submit", "data-testid": "answer-send" }, icon("send", 14), "Send");
    const form = h("form", { class: "answer-form" }, h("div", { class: "composer-label" }, "The agent is waiting for your answer"), h("div", { class: "answer-row" }, answer, send));
    answer.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!answer.value.trim()) return;
      busy(send, true);
      try {
        task = await call("SubmitInput", { taskId, text: answer.value.trim() });
        paintHeader();
        clear(composer);
        composer.hidden = true;
      } catch (error) {
        failed(error);
      } finally {
        busy(send, false);
      }
    });
    clear(composer, form);
    answer.focus();
  };

  const draw = (payload) => {
    const zone = String(payload.target_zone || "canvas");
    const el = renderPayload(payload, context);
    if (zone === "status") {
      // A status component replaces the previous one of its kind (progress moves on).
      const previous = statusZone.querySelector(`[data-component="${CSS.escape(String(payload.component))}"]`);
      if (previous) previous.replaceWith(el);
      else statusZone.prepend(el);
    } else {
      if (zone !== "canvas") el.prepend(h("div", { class: "zone-label" }, `zone: ${zone}`));
      canvasZone.prepend(el);
    }
    canvasZone.closest(".zones").classList.add("has-content");
  };

  const entry = (event, ...children) => h("li", { class: "event", dataset: { seq: String(event.seq), type: String(event.type || "").replace("EVENT_TYPE_", "").toLowerCase() } }, ...children);

  const apply = (event) => {
    const meta = event.metadata || {};
    const role = String(event.role || "").replace("EVENT_ROLE_", "").toLowerCase();
    switch (event.type) {
      case "EVENT_TYPE_STATUS": {
        const name = String(meta.status || "");
        task = { ...task, status: Object.keys(STATUS).find((k) => STATUS[k][0] === name) || task.status };
        paintHeader();
        showComposer(name === "waiting_input");
        const li = entry(event, h("div", { class: "status-line" }, h("span", {}, event.contentText || STATUS_LABELS[name] || name), meta.note ? h("span", { class: "muted" }, ` — ${meta.note}`) : null));
        li.classList.add("event-status");
        if (ROUTINE_REASONS.has(meta.reason)) li.hidden = true;
        timeline.append(li);
        if (TERMINAL.has(name)) refreshArtifacts();
        if (!ROUTINE_REASONS.has(meta.reason) || name === "running") sidebarSoon();
        return;
      }
      case "EVENT_TYPE_PLAN": {
        plan.apply(meta);
        const li = entry(event);
        li.hidden = true;
        timeline.append(li);
        return;
      }
      case "EVENT_TYPE_NEXUS_RENDER": {
        const payload = event.renderPayload || {};
        context.changed(); // a component may show a file written just before it
        draw(payload);
        timeline.append(entry(event, h("div", { class: "render-line" }, icon("bolt", 12), `Showed ${payload.component || "a component"} in ${payload.target_zone || "canvas"}`)));
        refreshArtifacts();
        return;
      }
      case "EVENT_TYPE_TOOL_USE":
      case "EVENT_TYPE_TOOL_RESULT": {
        const using = event.type === "EVENT_TYPE_TOOL_USE";
        const name = meta.tool || meta.name || "tool";
        timeline.append(
          entry(
            event,
            h(
              "details",
              { class: `tool ${using ? "tool-use" : "tool-result"}` },
              h("summary", {}, icon("tool", 14), h("span", {}, using ? `Called ${name}` : `Result from ${name}`)),
              h("pre", { class: "json" }, event.contentText || JSON.stringify(meta, null, 2)),
            ),
          ),
        );
        return;
      }
      case "EVENT_TYPE_MESSAGE_DELTA": {
        // Partial output: grows one message in place until the message event that closes it.
        const key = String(meta.message_id || meta.message_key || "");
        let bubble = deltas.get(key);
        if (!bubble) {
          bubble = h("div", { class: "bubble-text streaming" });
          deltas.set(key, bubble);
          timeline.append(entry(event, message(role, event, bubble)));
        } else timeline.append(Object.assign(entry(event), { hidden: true }));
        bubble.textContent += event.contentText || "";
        return;
      }
      default: {
        const key = String(meta.message_id || meta.message_key || "");
        if (key && deltas.has(key)) {
          const bubble = deltas.get(key);
          bubble.textContent = event.contentText || "";
          bubble.classList.remove("streaming");
          deltas.delete(key);
          timeline.append(Object.assign(entry(event), { hidden: true }));
          return;
        }
        timeline.append(entry(event, message(role, event, h("div", { class: "bubble-text" }, event.contentText || ""))));
      }
    }
  };

  const message = (role, event, body) => {
    const meta = event.metadata || {};
    const kind = meta.message_type;
    const who = role === "user" ? "You" : role === "assistant" ? agent.name || "Agent" : role === "tool" ? "Tool" : "System";
    return h(
      "div",
      { class: `message from-${role}` },
      role === "user" ? null : avatar(who, role === "assistant" ? agent.avatarUrl : "", "small"),
      h(
        "div",
        { class: "bubble" },
        h("div", { class: "bubble-head" }, h("strong", {}, who), h("time", { datetime: event.createTime || "" }, event.createTime ? new Date(event.createTime).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "")),
        kind === "image" || kind === "file" ? h("div", { class: "attachment" }, icon("file", 14), String(meta.name || meta.url || event.contentText)) : body,
      ),
    );
  };

  clear(
    main,
    h(
      "div",
      { class: "task" },
      h(
        "header",
        { class: "task-head" },
        h(
          "div",
          { class: "task-title-block" },
          h("h1", { class: "task-title", "data-testid": "task-title" }, task.title || "Untitled task"),
          h("div", { class: "task-meta" }, avatar(agent.name, agent.avatarUrl, "tiny"), h("span", {}, agent.name || task.agentId), h("span", { class: "sep" }, "·"), h("span", {}, relativeTime(task.createTime)), status, connection),
        ),
        h("div", { class: "task-actions" }, pin, archive, cancel),
      ),
      plan.el,
      h(
        "div",
        { class: "task-body" },
        h("div", { class: "timeline-column" }, timeline, composer),
        h(
          "aside",
          { class: "zones" },
          statusZone,
          h("div", { class: "zone-heading" }, "Canvas"),
          canvasZone,
          h("div", { class: "zone-heading" }, "Files"),
          artifactList,
        ),
      ),
    ),
  );
  paintHeader();
  refreshArtifacts();

  const known = cachedEvents(taskId);
  for (const event of known) apply(event);
  const STATES = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", ended: "" };
  const stream = follow(taskId, known, {
    onEvent: (event) => {
      apply(event);
      const column = timeline.parentElement;
      if (column) column.scrollTop = column.scrollHeight;
    },
    onEnd: async () => {
      connection.textContent = "";
      connection.dataset.state = "ended";
      try {
        task = await call("GetTask", { taskId });
      } catch {
        return;
      }
      paintHeader();
      showComposer(false);
      refreshArtifacts();
      refreshSidebar();
    },
    onState: (name) => {
      connection.dataset.state = name;
      connection.textContent = STATES[name] || "";
    },
    onProblem: (error) => failed(error),
  });
  state.cleanup = () => stream.stop();
}

// -- artifacts ------------------------------------------------------------------------------------------------

async function openArtifact(artifact) {
  const body = h("div", { class: "modal-body" }, h("div", { class: "skeleton" }), h("div", { class: "skeleton short" }));
  const close = () => overlay.remove();
  const overlay = h(
    "div",
    { class: "modal-overlay", onclick: (e) => e.target === overlay && close() },
    h(
      "div",
      { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": artifact.displayName, "data-testid": "artifact-modal" },
      h(
        "header",
        { class: "modal-head" },
        h("h2", {}, artifact.displayName),
        h("div", { class: "modal-actions" }, h("button", { class: "button ghost small", onclick: () => downloadArtifact(artifact) }, icon("download", 14), "Download"), h("button", { class: "icon-button", "aria-label": "Close", "data-testid": "modal-close", onclick: close }, icon("x")))
      ),
      body,
    ),
  );
  document.addEventListener("keydown", function onKey(e) {
    if (e.key === "Escape") {
      close();
      document.removeEventListener("keydown", onKey);
    }
  });
  document.body.append(overlay);
  try {
    await showArtifact(body, artifact);
  } catch (error) {
    clear(body, h("p", { class: "error-text" }, error.message));
  }
}

async function downloadArtifact(artifact) {
  try {
    const blob = await artifactBlob(artifact.artifactId);
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: artifact.displayName || "artifact" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    failed(error);
  }
}

async function pinArtifact(artifact) {
  try {
    await call("UpdateArtifact", { artifact: { artifactId: artifact.artifactId, isPinned: !artifact.isPinned }, updateMask: "isPinned" });
    refreshSidebar();
  } catch (error) {
    failed(error);
  }
}

// -- lists: the archive, a session ----------------------------------------------------------------------------

function taskRow(task, action) {
  return h(
    "li",
    { class: "task-row", dataset: { taskId: task.taskId } },
    h("a", { href: `#/task/${task.taskId}`, class: "task-row-link" }, h("strong", {}, task.title || "Untitled task"), h("span", { class: "muted small" }, relativeTime(task.lastActiveTime || task.createTime))),
    statusPill(task.status),
    action || null,
  );
}

async function archiveView(main) {
  document.title = "Archive · Nexus";
  const list = h("ul", { class: "task-list", "data-testid": "archive-list" });
  clear(main, h("div", { class: "page" }, h("h1", {}, "Archive"), h("p", { class: "muted" }, "Archived tasks stay searchable and can be restored at any time."), list));
  const page = await call("ListTasks", { archiveFilter: "ARCHIVE_FILTER_ARCHIVED", pageSize: 100 });
  const tasks = page.tasks || [];
  clear(
    list,
    tasks.length
      ? tasks.map((task) =>
          taskRow(
            task,
            h("button", { class: "button ghost small", onclick: async () => {
              try {
                await call("UpdateTask", { task: { taskId: task.taskId, isArchived: false }, updateMask: "isArchived" });
                await refreshSidebar();
                archiveView(main);
              } catch (error) {
                failed(error);
              }
            } }, icon("restore", 14), "Restore"),
          ),
        )
      : emptyState("Nothing archived", "Archive a finished task to tidy up the sidebar."),
  );
}

async function sessionView(main, sessionId) {
  const page = await call("ListTasks", { sessionId, pageSize: 100 });
  const sessions = (await call("ListSessions", { pageSize: 100 })).sessions || [];
  const session = sessions.find((s) => s.sessionId === sessionId) || { title: "Session" };
  document.title = `${session.title} · Nexus`;
  const tasks = page.tasks || [];
  clear(
    main,
    h(
      "div",
      { class: "page" },
      h("h1", {}, session.title),
      h("p", { class: "muted" }, "Commands run here join this session."),
      commandBox({ sessionId }).form,
      h("h2", { class: "section-title" }, "Tasks"),
      tasks.length ? h("ul", { class: "task-list" }, tasks.map((t) => taskRow(t))) : emptyState("No tasks yet", "Run a command above to start."),
    ),
  );
}

// -- settings -----------------------------------------------------------------------------------------------------

async function settingsView(main, tab, agentId) {
  document.title = "Settings · Nexus";
  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "Settings" },
    h("a", { href: "#/settings/profile", class: tab === "profile" ? "current" : "", "data-testid": "tab-profile" }, "Profile"),
    h("a", { href: "#/settings/agents", class: tab === "agents" ? "current" : "", "data-testid": "tab-agents" }, "Agents & connections"),
  );
  const body = h("div", { class: "settings-body" });
  clear(main, h("div", { class: "page" }, h("h1", {}, "Settings"), tabs, body));
  if (tab === "agents" && agentId) return agentSettings(body, agentId);
  if (tab === "agents") return agentsList(body);
  return profileSettings(body);
}

function select(name, value, choices) {
  return h("select", { name, "data-testid": `pref-${name}` }, choices.map(([v, label]) => h("option", { value: v, selected: v === (value || "") }, label)));
}

async function profileSettings(body) {
  const me = await call("GetMe", {});
  state.me = me;
  const profile = me.profile || {};
  const prefs = profile.preferences || {};
  const nickname = h("input", { type: "text", name: "nickname", value: profile.nickname || "", "data-testid": "profile-nickname" });
  const avatarUrl = h("input", { type: "url", name: "avatar_url", value: profile.avatarUrl || "", placeholder: "https://…" });
  const theme = select("theme", prefs.theme || "system", [["system", "Match the system"], ["light", "Light"], ["dark", "Dark"]]);
  const language = h("input", { type: "text", name: "language", value: prefs.language || "", placeholder: "en, zh-CN, …" });
  const risk = select("risk_level", prefs.risk_level, [["", "Not set"], ["low", "Low — ask before anything risky"], ["medium", "Medium"], ["high", "High — act freely"]]);
  const style = select("output_style", prefs.output_style, [["", "Not set"], ["concise", "Concise"], ["detailed", "Detailed"]]);
  const principles = h("ol", { class: "principles", "data-testid": "principles" });
  const addPrinciple = (text = "") => {
    const input = h("input", { type: "text", value: text, placeholder: "e.g. Cite a source for every claim", "data-testid": "principle-input" });
    const row = h("li", {}, input, h("button", { type: "button", class: "icon-button", "aria-label": "Remove", onclick: () => row.remove() }, icon("x")));
    principles.append(row);
    return input;
  };
  for (const p of profile.principles || []) addPrinciple(p);
  const save = h("button", { class: "button primary", type: "submit", "data-testid": "profile-save" }, "Save changes");
  const form = h(
    "form",
    { class: "card form-grid", novalidate: true },
    h("h2", {}, "Profile"),
    h("div", { class: "profile-row" }, avatar(profile.nickname, profile.avatarUrl, "large"), h("div", {}, h("strong", {}, profile.nickname), h("div", { class: "muted" }, (me.user && me.user.email) || ""))),
    field("Name", nickname, "nickname"),
    field("Avatar URL", avatarUrl, "avatar_url", "An http(s) link to a picture"),
    h("h2", {}, "Preferences"),
    h("div", { class: "two" }, field("Theme", theme, "theme"), field("Language", language, "language", "A language tag")),
    h("div", { class: "two" }, field("Risk level", risk, "risk_level"), field("Output style", style, "output_style")),
    h("h2", {}, "Principles"),
    h("p", { class: "muted small" }, "How you want agents to work with you, in order of importance."),
    principles,
    h("button", { type: "button", class: "button ghost small", "data-testid": "principle-add", onclick: () => addPrinciple().focus() }, icon("plus", 14), "Add a principle"),
    h("p", { class: "form-error", role: "alert" }),
    h("div", { class: "form-actions" }, save),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    busy(save, true);
    const preferences = { theme: theme.value, language: language.value.trim() || null, risk_level: risk.value || null, output_style: style.value || null };
    try {
      const updated = await call("UpdateProfile", {
        profile: {
          nickname: nickname.value.trim(),
          avatarUrl: avatarUrl.value.trim(),
          preferences,
          principles: [...principles.querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean),
          etag: profile.etag,
        },
        updateMask: "nickname,avatarUrl,preferences,principles",
      });
      state.me = { ...state.me, profile: updated };
      applyTheme(updated.preferences);
      toast("Profile saved.", "success");
      await refreshSidebar();
      profileSettings(body);
    } catch (error) {
      fieldErrors(form, error);
      if (error.code === "aborted") toast("Your profile changed elsewhere; reload and try again.", "error");
    } finally {
      busy(save, false);
    }
  });
  clear(body, form);
}

async function agentsList(body) {
  const page = await call("ListAgents", { pageSize: 100 });
  const agents = page.agents || [];
  clear(
    body,
    agents.length
      ? h(
          "div",
          { class: "agent-grid", "data-testid": "agent-list" },
          agents.map((agent) =>
            h(
              "a",
              { class: "agent-card", href: `#/settings/agents/${agent.id}`, "data-testid": "agent-card", dataset: { agentId: agent.id } },
              avatar(agent.name, agent.avatarUrl, "large"),
              h("div", {}, h("strong", {}, agent.name), h("p", { class: "muted small" }, agent.description || ""), h("span", { class: "badge subtle" }, `${((agent.capabilitiesSnapshot || {}).skills || []).length} skills`)),
            ),
          ),
        )
      : emptyState("No agents", "Agents come with the catalog."),
  );
}

function inputType(input) {
  return String(input.type || "").replace("INPUT_TYPE_", "").toLowerCase();
}

async function agentSettings(body, agentId) {
  const reply = await call("GetAgentSettings", { agentId });
  const agent = reply.agent || {};
  const snapshot = agent.capabilitiesSnapshot || {};
  const connections = reply.connections || [];
  const skills = (snapshot.skills || []).map((skill) =>
    h(
      "div",
      { class: "skill" },
      h("h3", {}, skill.name, " ", h("code", { class: "muted small" }, skill.id)),
      h("p", { class: "muted" }, skill.description || ""),
      (skill.inputs || []).length
        ? h(
            "table",
            { class: "inputs" },
            h("thead", {}, h("tr", {}, h("th", {}, "Input"), h("th", {}, "Type"), h("th", {}, "Default"), h("th", {}, "About"))),
            h(
              "tbody",
              {},
              skill.inputs.map((input) =>
                h(
                  "tr",
                  {},
                  h("td", {}, h("code", {}, input.name), input.required ? h("span", { class: "badge" }, "required") : null),
                  h("td", {}, inputType(input), input.allowedValues && input.allowedValues.length ? h("div", { class: "muted small" }, input.allowedValues.join(" | ")) : null),
                  h("td", {}, input.defaultValue === undefined ? "—" : JSON.stringify(input.defaultValue)),
                  h("td", { class: "muted" }, input.description || ""),
                ),
              ),
            ),
          )
        : null,
    ),
  );
  const commands = (snapshot.commands || []).map((c) => h("li", {}, h("code", {}, c.trigger), " ", h("span", { class: "muted" }, c.description || "")));
  const connectionRows = connections.map((c) =>
    h(
      "li",
      { class: "connection-row", "data-testid": "connection", dataset: { connectionId: c.id } },
      h("div", { class: "connection-text" }, h("strong", {}, c.displayName), h("span", { class: "muted small" }, `${c.provider} · fingerprint ${c.credentialsFingerprint || "—"}`), h("span", { class: "muted small", "data-testid": "connection-verified" }, c.lastVerifyTime ? `Verified ${relativeTime(c.lastVerifyTime)}` : "Never verified")),
      h("span", { class: `pill conn-${String(c.status || "").replace("CONNECTION_STATUS_", "").toLowerCase()}` }, String(c.status || "").replace("CONNECTION_STATUS_", "").toLowerCase()),
      h("button", { class: "button ghost small", "data-testid": "connection-verify", onclick: async () => {
        try {
          await call("VerifyConnection", { connectionId: c.id });
          toast("Marked as verified.", "success");
          agentSettings(body, agentId);
        } catch (error) {
          failed(error);
        }
      } }, icon("check", 14), "Verify"),
      h("button", { class: "button danger-ghost small", "data-testid": "connection-remove", onclick: async () => {
        if (!confirm(`Remove “${c.displayName}” and its credentials?`)) return;
        try {
          await call("DisconnectAgent", { connectionId: c.id, etag: c.etag });
          toast("Connection removed.", "success");
          agentSettings(body, agentId);
        } catch (error) {
          failed(error);
        }
      } }, icon("x", 14), "Remove"),
    ),
  );

  const provider = h("input", { type: "text", name: "provider", placeholder: "notion_oauth", "data-testid": "connection-provider" });
  const displayName = h("input", { type: "text", name: "display_name", placeholder: "My Notion", "data-testid": "connection-name" });
  const secrets = h("div", { class: "secrets" });
  const addSecret = () => {
    const key = h("input", { type: "text", placeholder: "api_key", "aria-label": "Credential name", "data-testid": "secret-key" });
    const value = h("input", { type: "password", autocomplete: "off", placeholder: "••••••••", "aria-label": "Credential value", "data-testid": "secret-value" });
    secrets.append(h("div", { class: "secret-row" }, key, value));
  };
  addSecret();
  const connect = h("button", { class: "button primary", type: "submit", "data-testid": "connection-add" }, "Connect");
  const form = h(
    "form",
    { class: "form-grid", novalidate: true },
    h("div", { class: "two" }, field("Provider", provider, "provider"), field("Name", displayName, "display_name")),
    h("div", { class: "field" }, h("span", { class: "field-label" }, "Credentials"), secrets, h("span", { class: "field-hint" }, "Stored encrypted. Nexus never shows them again — not even to you."), h("span", { class: "field-error", dataset: { errorFor: "credentials" } })),
    h("button", { type: "button", class: "button ghost small", onclick: addSecret }, icon("plus", 14), "Add a field"),
    h("p", { class: "form-error", role: "alert" }),
    h("div", { class: "form-actions" }, connect),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const credentials = {};
    for (const row of secrets.querySelectorAll(".secret-row")) {
      const [k, v] = row.querySelectorAll("input");
      if (k.value.trim()) credentials[k.value.trim()] = v.value;
    }
    busy(connect, true);
    try {
      await call("ConnectAgent", { agentId, provider: provider.value.trim(), displayName: displayName.value.trim(), credentials, requestId: crypto.randomUUID() });
      toast("Connected.", "success");
      agentSettings(body, agentId);
    } catch (error) {
      fieldErrors(form, error);
    } finally {
      busy(connect, false);
    }
  });

  clear(
    body,
    h("a", { class: "back", href: "#/settings/agents" }, "← All agents"),
    h("div", { class: "agent-hero" }, avatar(agent.name, agent.avatarUrl, "large"), h("div", {}, h("h2", { "data-testid": "agent-name" }, agent.name), h("p", { class: "muted" }, agent.description || ""))),
    h("section", { class: "card" }, h("h2", {}, "Connections"), connectionRows.length ? h("ul", { class: "connection-list", "data-testid": "connections" }, connectionRows) : h("p", { class: "muted", "data-testid": "connections" }, "No connections yet. Grant this agent access to a service below."), h("h3", {}, "Add a connection"), form),
    h("section", { class: "card" }, h("h2", {}, "Skills"), skills.length ? skills : h("p", { class: "muted" }, "No public skills.")),
    h("section", { class: "card" }, h("h2", {}, "Commands"), commands.length ? h("ul", { class: "plain" }, commands) : h("p", { class: "muted" }, "No commands.")),
  );
}

// -- start ---------------------------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
auth.onSignOut(() => {
  cleanup();
  renderAuth();
});
if (auth.signedIn) renderShell().catch(() => renderAuth());
else renderAuth();
