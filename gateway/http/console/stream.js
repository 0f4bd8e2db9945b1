// A task's events, live, over Server-Sent Events (GET /v1/tasks/{id}/events).
//
// An EventSource cannot send an Authorization header, so each connection opens with a stream
// ticket (CreateStreamTicket: a few minutes, this task only). Every event's SSE id is its seq:
// when the connection drops, the browser reconnects by itself with Last-Event-ID and the server
// resumes right after it. When the browser gives up (the server said no, say to an expired
// ticket), a new connection starts with a new ticket and after_seq = the last seq shown.
//
// The events seen so far are kept in sessionStorage, so a reload shows them at once and resumes
// the stream after the last one instead of replaying the whole task.

import { call } from "./api.js";

const CACHE_PREFIX = "nexus.events.";
const MAX_CACHE_CHARS = 1_500_000;

export function cachedEvents(taskId) {
  try {
    const events = JSON.parse(sessionStorage.getItem(CACHE_PREFIX + taskId) || "[]");
    return Array.isArray(events) ? events : [];
  } catch {
    return [];
  }
}

function remember(taskId, events) {
  const text = JSON.stringify(events);
  try {
    if (text.length <= MAX_CACHE_CHARS) sessionStorage.setItem(CACHE_PREFIX + taskId, text);
    else sessionStorage.removeItem(CACHE_PREFIX + taskId);
  } catch {
    sessionStorage.removeItem(CACHE_PREFIX + taskId); // storage full: just replay next time
  }
}

// follow(taskId, known, handlers) → {stop()}; `known` are the events already shown (in order).
// handlers: onEvent(event), onEnd(), onState("connecting" | "live" | "reconnecting"), onProblem(error)
export function follow(taskId, known, handlers) {
  const events = [...known];
  let lastSeq = events.length ? Number(events[events.length - 1].seq) : 0;
  let source = null;
  let stopped = false;
  let retryMs = 500;
  let saveTimer = null;

  const save = () => {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => remember(taskId, events), 150);
  };

  const stop = () => {
    stopped = true;
    if (source) source.close();
    source = null;
    clearTimeout(saveTimer);
    remember(taskId, events);
  };

  async function open() {
    if (stopped) return;
    handlers.onState("connecting");
    let ticket;
    try {
      ticket = await call("CreateStreamTicket", { taskId });
    } catch (error) {
      if (error.code === "unavailable") return later();
      stop();
      handlers.onProblem(error);
      return;
    }
    if (stopped) return;
    const url = `${ticket.eventsPath}?after_seq=${lastSeq}&ticket=${encodeURIComponent(ticket.ticket)}`;
    source = new EventSource(url);
    source.onopen = () => {
      retryMs = 500;
      handlers.onState("live");
    };
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      lastSeq = Number(event.seq);
      events.push(event);
      save();
      handlers.onEvent(event);
    };
    source.addEventListener("end", () => {
      stop();
      handlers.onEnd();
    });
    source.addEventListener("abort", (message) => {
      const error = JSON.parse(message.data);
      // unavailable: the gateway is restarting; EventSource reconnects with Last-Event-ID.
      if (error.code !== "unavailable") {
        stop();
        handlers.onProblem(error);
      }
    });
    source.onerror = () => {
      if (stopped) return;
      handlers.onState("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        later();
      }
    };
  }

  function later() {
    handlers.onState("reconnecting");
    setTimeout(open, retryMs);
    retryMs = Math.min(retryMs * 2, 10_000);
  }

  // A reload or a closed tab keeps what was seen, so the next page resumes right after it.
  const flush = () => remember(taskId, events);
  window.addEventListener("pagehide", flush);
  const stopStream = stop;
  const stopAll = () => {
    window.removeEventListener("pagehide", flush);
    stopStream();
  };

  open();
  return {
    stop: stopAll,
    get lastSeq() {
      return lastSeq;
    },
  };
}
