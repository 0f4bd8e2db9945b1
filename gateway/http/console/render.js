// Render payloads (nexus_render events) drawn into their target zones. The components the seed
// catalog uses get a real rendering; any other component is a labelled card with its JSON, so a
// new skill is visible before the console learns it.

import { artifactBlob, call } from "./api.js";
import { bytes, h, icon, markdown } from "./dom.js";

const TEXT_TYPES = /^(text\/|application\/(json|xml|x-ndjson))|markdown/;

function card(component, title, ...body) {
  return h(
    "section",
    { class: `zone-card component-${component}`, dataset: { component } },
    title ? h("header", { class: "zone-card-title" }, title) : null,
    ...body,
  );
}

function safeUrl(value) {
  try {
    const url = new URL(String(value));
    return url.protocol === "http:" || url.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

function webPreview(props) {
  const url = safeUrl(props.url);
  if (!url) return unknown("web_preview", props);
  return card(
    "web_preview",
    null,
    h(
      "div",
      { class: "web-preview" },
      h("div", { class: "web-preview-bar" }, h("span", { class: "dots" }, h("i"), h("i"), h("i")), h("span", { class: "web-preview-address" }, url.href)),
      h(
        "div",
        { class: "web-preview-body" },
        h("div", { class: "web-preview-globe" }, icon("globe", 28)),
        h("div", { class: "web-preview-host" }, url.hostname),
        h("div", { class: "web-preview-path" }, url.pathname === "/" ? "Home page" : url.pathname),
        h("a", { class: "button ghost small", href: url.href, target: "_blank", rel: "noopener noreferrer" }, icon("open", 14), "Open site"),
      ),
    ),
  );
}

function progress(props) {
  const percent = Math.max(0, Math.min(100, Number(props.percent) || 0));
  return card(
    "progress",
    null,
    h(
      "div",
      { class: "progress" },
      h("div", { class: "progress-label" }, h("span", {}, String(props.label || "Working…")), h("span", { class: "progress-percent" }, `${percent}%`)),
      h("div", { class: "progress-track", role: "progressbar", "aria-valuenow": percent, "aria-valuemin": 0, "aria-valuemax": 100 }, h("div", { class: "progress-fill", style: `width:${percent}%` })),
    ),
  );
}

function answerCard(props) {
  return card(
    "answer_card",
    "Your question",
    h("blockquote", { class: "answer-card-question" }, String(props.question || "")),
  );
}

// The task's newest artifact, shown in place (markdown, text or an image).
function artifactViewer(props, context) {
  const body = h("div", { class: "artifact-viewer-body" }, h("div", { class: "skeleton" }), h("div", { class: "skeleton short" }));
  const view = card("artifact_viewer", String(props.title || "Artifact"), body);
  context
    .artifacts()
    .then((artifacts) => {
      const wanted = props.artifact_id ? artifacts.find((a) => a.artifactId === props.artifact_id) : artifacts[0];
      if (!wanted) {
        body.replaceChildren(h("p", { class: "muted" }, "The artifact is not ready yet."));
        return;
      }
      return showArtifact(body, wanted);
    })
    .catch((error) => body.replaceChildren(h("p", { class: "error-text" }, error.message)));
  return view;
}

export async function showArtifact(container, artifact) {
  const blob = await artifactBlob(artifact.artifactId);
  const type = artifact.contentType || blob.type || "";
  const meta = h("div", { class: "artifact-meta" }, h("span", { class: "badge" }, artifact.type || "file"), h("span", {}, bytes(artifact.sizeBytes)));
  if (type.startsWith("image/")) {
    const url = URL.createObjectURL(blob);
    container.replaceChildren(meta, h("img", { class: "artifact-image", src: url, alt: artifact.displayName }));
  } else if (TEXT_TYPES.test(type) || artifact.type === "markdown") {
    const text = await blob.text();
    const rendered = /markdown/.test(type) || artifact.type === "markdown" ? markdown(text) : h("pre", { class: "artifact-plain" }, text);
    container.replaceChildren(meta, rendered);
  } else {
    container.replaceChildren(meta, h("p", { class: "muted" }, "This file cannot be shown here; download it instead."));
  }
}

function unknown(component, payload) {
  return card(
    component,
    h("span", {}, h("span", { class: "badge subtle" }, "component"), " ", component),
    h("pre", { class: "json" }, JSON.stringify(payload, null, 2)),
  );
}

const COMPONENTS = {
  web_preview: webPreview,
  progress,
  answer_card: answerCard,
  artifact_viewer: artifactViewer,
};

// One render payload as an element: {target_zone, component, props}.
export function renderPayload(payload, context) {
  const component = String(payload.component || "unknown");
  const props = payload.props && typeof payload.props === "object" ? payload.props : {};
  const draw = COMPONENTS[component];
  const el = draw ? draw(props, context) : unknown(component, payload);
  el.dataset.zone = String(payload.target_zone || "canvas");
  return el;
}

// How a task's artifacts are read by the components that show them (listed once per change).
export function artifactsOf(taskId) {
  let pending = null;
  return {
    artifacts() {
      if (!pending) {
        pending = call("ListArtifacts", { taskId, pageSize: 50 }).then((page) => page.artifacts || []);
        pending.catch(() => {
          pending = null;
        });
      }
      return pending;
    },
    changed() {
      pending = null;
    },
  };
}
