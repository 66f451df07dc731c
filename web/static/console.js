// The operator console: a page over the operator routes of the API. Every call sends the
// operator's token; everything shown is set as text (never as HTML), so no record, error
// or id can turn into markup.
"use strict";

const API = "/api/v1/distribution";
const TOKEN_KEY = "distribution.console.token";
const REFRESH_MS = 5000;
const DEAD_LETTERS_EVERY = 3;  // refreshes: listing them reads the broker, so less often
const STATUSES = ["claimed", "scheduled", "publishing", "published", "failed"];
const PLATFORMS = ["tiktok", "instagram", "youtube", "snapchat"];
const PLATFORM_STATES = ["pending", "publishing", "published", "failed", "unknown"];
const OUTBOX_LATE_SECONDS = 60;

const $ = (id) => document.getElementById(id);

let token = null;
let session = 0;       // a new one at each sign-in and sign-out: older loops and answers stop
let timer = null;
let ticks = 0;
let openItem = null;   // the item shown below the search, refreshed with the overview
let shownItem = "";    // its last answer, so an unchanged item is not redrawn under the cursor
let shownLetters = "";
let query = null;      // the search shown, and the cursor of its next page
let nextCursor = null;
let page = 1;

/** An answer nobody wants any more: the token was refused, or the operator signed out. */
class Dropped extends Error {}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------- small helpers ----------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (name === "class") node.className = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);  // strings become text
  }
  return node;
}

function button(label, onclick, props) {
  return el("button", {type: "button", onclick, ...(props || {})}, String(label));
}

function duration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  if (isNaN(t)) return String(iso);
  const ago = (Date.now() - t.getTime()) / 1000;
  const relative = ago >= 0 ? `${duration(ago)} ago` : `in ${duration(-ago)}`;
  return `${t.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")} (${relative})`;
}

function clock() {
  return new Date().toLocaleTimeString();
}

function say(text, kind) {
  const box = $("message");
  box.textContent = text || "";
  box.className = kind || "";
  box.hidden = !text;
}

/** What went wrong, said once; a dropped answer says nothing. */
function report(what) {
  return (err) => {
    if (!(err instanceof Dropped)) say(`${what}: ${err.message}`, "error");
  };
}

function segment(text) {
  return encodeURIComponent(text);
}

// ---------- the API ----------

async function call(method, path, body) {
  const sent = token;
  const init = {method, cache: "no-store", headers: {Authorization: `Bearer ${sent}`}};
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (err) {
    throw new ApiError(0, "unreachable", "the service did not answer");
  }
  const data = await res.json().catch(() => null);
  if (token !== sent) throw new Dropped();
  if (res.status === 401 || res.status === 403) {
    refuse(res.status, data);
    throw new Dropped();
  }
  if (!res.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(res.status, error.code || "error",
                       `${res.status} ${error.code || ""}: ${error.message || res.statusText}`);
  }
  return data;
}

// ---------- signing in and out ----------

function tokenFromHash() {
  const found = new URLSearchParams(location.hash.slice(1)).get("token");
  if (found) history.replaceState(null, "", location.pathname + location.search);  // out of sight
  return found;
}

function describe(jwt) {
  // For the operator's eyes only: the server checks the token, the page just reads it.
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part));
    const until = claims.exp ? `, token expires ${when(new Date(claims.exp * 1000).toISOString())}` : "";
    return `signed in as ${claims.sub}${until}`;
  } catch (err) {
    return "signed in";
  }
}

function signOut() {
  session += 1;
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  openItem = query = nextCursor = null;
  shownItem = shownLetters = "";
  for (const id of ["status-counts", "platform-rows", "dead-letter-rows", "search-rows",
                    "item-platforms", "timeline-rows", "item-facts"]) {
    $(id).replaceChildren();
  }
  for (const id of ["lateness-count", "lateness-p50", "lateness-p99", "oldest-overdue",
                    "outbox-pending", "outbox-oldest", "dead-letters-note", "search-summary",
                    "who", "updated", "item-id", "item-status", "item-note"]) {
    $(id).replaceChildren();
  }
  $("console").hidden = $("item").hidden = $("sign-out").hidden = $("search-next").hidden = true;
  $("sign-in").hidden = false;
  document.title = "Distribution console";
  say("");
}

function refuse(status, data) {
  const why = data && data.error && data.error.message ? ` (${data.error.message})` : "";
  signOut();
  say(status === 403
    ? `Refused: this token is not an operator's${why}. Sign in with a token that has the operator scope.`
    : `Refused: this token is not valid here: missing, expired or not signed for this service${why}. Sign in with an operator token.`,
      "refused");
}

async function signIn(jwt) {
  signOut();
  const mine = session;
  token = jwt.trim().replace(/^Bearer\s+/i, "");
  sessionStorage.setItem(TOKEN_KEY, token);
  $("sign-in").hidden = true;
  say("Signing in…");
  await refresh(true);
  if (session !== mine) return;  // refused (or signed out) meanwhile
  say("");
  $("who").textContent = describe(token);
  $("sign-out").hidden = false;
  $("console").hidden = false;
  schedule(mine);
}

function schedule(mine) {
  timer = setTimeout(async () => {
    await refresh(false);
    if (session === mine) schedule(mine);
  }, REFRESH_MS);
}

// ---------- refreshing ----------

async function refresh(everything) {
  ticks += 1;
  const jobs = [showOverview()];
  if (everything || ticks % DEAD_LETTERS_EVERY === 0) jobs.push(showDeadLetters());
  if (openItem) jobs.push(showItem(openItem));
  const results = await Promise.allSettled(jobs);
  if (token === null) return;
  const failed = results.find((r) => r.status === "rejected" && !(r.reason instanceof Dropped));
  const stamp = $("updated");
  stamp.textContent = failed
    ? `refresh failed at ${clock()}: ${failed.reason.message} (older figures shown)`
    : `updated ${clock()}`;
  stamp.className = failed ? "stale" : "";
}

function countButton(n, fields) {
  return n ? button(n, () => searchFor(fields), {class: "link"}) : "0";
}

async function showOverview() {
  const o = await call("GET", "/overview");
  const byStatus = o.items_by_status || {};
  const states = [...STATUSES, ...Object.keys(byStatus).filter((s) => !STATUSES.includes(s))];
  $("status-counts").replaceChildren(...states.map((s) => {
    const n = byStatus[s] || 0;
    return el("tr", {class: s === "failed" && n ? "bad" : ""}, el("th", {}, s),
              el("td", {"data-count": s}, countButton(n, {status: s})));
  }));

  const rows = o.platform_rows || {};
  const outcomes = o.outcomes_last_hour || {};
  const names = [...new Set([...PLATFORMS, ...Object.keys(rows), ...Object.keys(outcomes)])];
  $("platform-rows").replaceChildren(...names.map((p) => {
    const hour = outcomes[p] || {};
    const now = rows[p] || {};
    return el("tr", {"data-platform": p}, el("th", {}, p),
      el("td", {"data-outcome": "published"}, hour.published || 0),
      el("td", {"data-outcome": "failed", class: hour.failed ? "warn" : ""}, hour.failed || 0),
      ...PLATFORM_STATES.map((s) => el("td", {
        "data-state": s, class: now[s] && (s === "unknown" || s === "failed") ? "bad" : ""},
        countButton(now[s] || 0, {platform: p, platform_status: s}))));
  }));

  const late = o.lateness_last_hour || {};
  $("lateness-count").textContent = late.count || 0;
  $("lateness-p50").textContent = duration(late.p50_seconds);
  $("lateness-p99").textContent = duration(late.p99_seconds);
  const overdue = $("oldest-overdue");
  overdue.className = o.oldest_overdue_item ? "bad" : "";
  overdue.replaceChildren(...(o.oldest_overdue_item
    ? [button(o.oldest_overdue_item, () => openItemView(o.oldest_overdue_item),
              {class: "link", id: "oldest-overdue-item"}),
       ` due ${duration(o.oldest_overdue_seconds)} ago, not publishing`]
    : ["none"]));
  $("outbox-pending").textContent = o.outbox_pending;
  const oldest = $("outbox-oldest");
  oldest.textContent = duration(o.outbox_oldest_pending_seconds);
  oldest.className = o.outbox_oldest_pending_seconds > OUTBOX_LATE_SECONDS ? "bad" : "";

  const failed = byStatus.failed || 0;
  const unknown = names.reduce((sum, p) => sum + ((rows[p] || {}).unknown || 0), 0);
  document.title = failed || unknown
    ? `(${failed} failed, ${unknown} unknown) Distribution console` : "Distribution console";
}

// ---------- dead letters ----------

async function showDeadLetters() {
  const body = await call("GET", "/dead-letters?limit=100");
  const seen = JSON.stringify(body.records);
  if (seen === shownLetters) return;  // keeps the buttons the operator may be about to click
  shownLetters = seen;
  const waiting = body.records.filter((r) => !r.redriven_at).length;
  $("dead-letters-note").textContent = body.records.length
    ? `${waiting} waiting, ${body.records.length - waiting} re-driven (the latest 100 of each topic)`
    : "none";
  $("dead-letter-rows").replaceChildren(...body.records.map(deadLetterRow));
}

function deadLetterRow(r) {
  const action = el("td", {class: "action"});
  redriveCell(action, r);
  const value = r.value === null || r.value === undefined ? `${r.value_bytes ?? "?"} bytes`
    : el("details", {}, el("summary", {}, `${r.value_bytes ?? "?"} bytes`),
         el("pre", {}, r.value));
  return el("tr", {"data-dead-letter": `${r.dlq_topic}/${r.partition}/${r.offset}`,
                   "data-key": r.key ?? "", class: r.redriven_at ? "done" : ""},
    el("td", {}, when(r.received_at)),
    el("td", {}, `${r.dlq_topic} ${r.partition}/${r.offset}`),
    el("td", {"data-field": "reason"}, r.reason ?? "—"),
    el("td", {"data-field": "error", class: "error"}, r.error ?? ""),
    el("td", {"data-field": "topic"}, r.topic ?? "—"),
    el("td", {"data-field": "key"},
       r.key ? button(r.key, () => openItemView(r.key), {class: "link"}) : "—"),
    el("td", {}, value),
    action);
}

function redriveCell(cell, r) {
  cell.replaceChildren(r.redriven_at
    ? el("span", {"data-redriven": r.redriven_at},
         `re-driven at ${when(r.redriven_at)} by ${r.redriven_by}`)
    : button("Re-drive", () => redrive(cell, r), {class: "redrive"}));
}

async function redrive(cell, r) {
  cell.querySelector("button").disabled = true;
  const path = `/dead-letters/${segment(r.dlq_topic)}/${r.partition}/${r.offset}/redrive`;
  try {
    const done = await call("POST", path);
    redriveCell(cell, done);
    cell.parentElement.className = "done";
    say(`Re-drove ${r.dlq_topic} ${r.partition}/${r.offset} (key ${r.key}) to ${r.topic}.`, "ok");
  } catch (err) {
    report("Re-drive failed")(err);
    shownLetters = "";
    showDeadLetters().catch(report("Listing the dead letters failed"));
  }
}

// ---------- item search ----------

const FIELDS = {status: "search-status", platform: "search-platform",
                platform_status: "search-platform-status", influencer_id: "search-influencer",
                campaign_id: "search-campaign"};

function searchFor(fields) {
  for (const [name, id] of Object.entries(FIELDS)) $(id).value = fields[name] || "";
  search(fields, null, 1).catch(report("Search failed"));
  $("search").scrollIntoView();
}

async function search(fields, cursor, number) {
  const params = new URLSearchParams({limit: "50"});
  for (const [name, value] of Object.entries(fields)) if (value) params.set(name, value);
  if (cursor) params.set("cursor", cursor);
  const body = await call("GET", `/items?${params}`);
  query = fields;
  nextCursor = body.next_cursor;
  page = number;
  $("search-rows").replaceChildren(...body.items.map(itemRow));
  $("search-summary").textContent = body.items.length
    ? `page ${page}: ${body.items.length} item(s), newest first` : "no item matches";
  $("search-next").hidden = !nextCursor;
}

function itemRow(item) {
  return el("tr", {"data-item-id": item.id},
    el("td", {}, button(item.id, () => openItemView(item.id), {class: "link"})),
    el("td", {"data-field": "status", class: `status-${item.status}`}, item.status),
    el("td", {}, (item.platform_status || []).map((p) => `${p.platform} ${p.status}`).join(", ") || "—"),
    el("td", {}, item.influencer_id),
    el("td", {}, item.campaign_id ?? "—"),
    el("td", {}, when(item.scheduled_at)),
    el("td", {}, when(item.updated_at)));
}

// ---------- one item: timeline, retry, settle ----------

async function openItemView(id) {
  openItem = id;
  showMissing(id);
  $("item-status").textContent = "loading…";
  $("item-note").textContent = "";
  $("item").hidden = false;
  $("item-id").textContent = id;
  $("item").scrollIntoView();
  await showItem(id).catch(report(`Reading item ${id} failed`));
}

async function showItem(id) {
  let body;
  try {
    body = await call("GET", `/items/${segment(id)}/timeline`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && openItem === id) return showMissing(id);
    throw err;
  }
  if (openItem !== id) return;  // another item was opened meanwhile
  const seen = JSON.stringify(body);
  if (seen === shownItem) return;  // keeps what the operator is typing in a settle field
  shownItem = seen;
  showFound(body);
}

function showMissing(id) {
  shownItem = "";
  $("item-status").textContent = "not found";
  $("item-status").className = "status";
  $("item-note").textContent = `No item ${id} (yet): it shows here as soon as it exists.`;
  $("retry").hidden = true;
  for (const tbody of ["item-facts", "item-platforms", "timeline-rows"]) $(tbody).replaceChildren();
}

function showFound({item, entries}) {
  $("item-id").textContent = item.id;
  $("item-status").textContent = item.status;
  $("item-status").className = `status status-${item.status}`;
  $("item-note").textContent = item.failure_reason ? `failure: ${item.failure_reason}` : "";
  const facts = [["influencer", item.influencer_id], ["campaign", item.campaign_id],
                 ["clip", item.clip_id], ["scheduled", when(item.scheduled_at)],
                 ["local time", item.scheduled_at_local && `${item.scheduled_at_local} ${item.timezone}`],
                 ["retries", item.retry_count], ["created", when(item.created_at)],
                 ["updated", when(item.updated_at)]];
  $("item-facts").replaceChildren(...facts.flatMap(([name, value]) =>
    [el("dt", {}, name), el("dd", {}, value ?? "—")]));
  $("retry").hidden = item.status !== "failed";
  $("item-platforms").replaceChildren(...(item.platform_status || []).map((p) => platformRow(item, p)));
  $("timeline-rows").replaceChildren(...entries.map(timelineRow));
}

function timelineRow(e) {
  const error = [e.error_class, e.reason_code, e.error].filter(Boolean).join(": ");
  return el("tr", {"data-entry": e.entry, "data-what": e.what ?? "",
                   "data-platform": e.platform ?? "", class: e.what === "failed" ? "bad" : ""},
    el("td", {}, when(e.at)),
    el("td", {}, e.entry),
    el("td", {}, e.what ?? ""),
    el("td", {}, e.platform ?? ""),
    el("td", {}, e.attempt ?? ""),
    el("td", {class: "error"}, error),
    el("td", {}, e.post_id ?? ""),
    el("td", {}, [e.topic, e.status].filter(Boolean).join(" ")));
}

function postCell(postId, postUrl) {
  // a link only to a web address: a `javascript:` URL from a record must not be clickable
  if (postUrl && /^https?:\/\//i.test(postUrl)) {
    return el("a", {href: postUrl, target: "_blank", rel: "noopener noreferrer"}, postId || postUrl);
  }
  return postId || "";
}

function platformRow(item, p) {
  const error = [p.error_class, p.reason_code, p.error].filter(Boolean).join(": ");
  return el("tr", {"data-platform": p.platform},
    el("th", {}, p.platform),
    el("td", {"data-field": "status", class: `status-${p.status}`}, p.status),
    el("td", {}, p.attempts),
    el("td", {class: "error"}, error),
    el("td", {}, postCell(p.post_id, p.post_url)),
    el("td", {}, p.next_attempt_at ? when(p.next_attempt_at) : ""),
    el("td", {}, p.status === "unknown" ? settleForm(item.id, p.platform) : ""));
}

function settleForm(id, platform) {
  const postId = el("input", {placeholder: "post id", "data-settle-post-id": platform});
  const postUrl = el("input", {placeholder: "post URL (optional)", "data-settle-post-url": platform});
  const published = () => {
    if (!postId.value.trim()) return say("Give the id of the post found on the platform.", "error");
    const body = {outcome: "published", post_id: postId.value.trim()};
    if (postUrl.value.trim()) body.post_url = postUrl.value.trim();
    settle(id, platform, body);
  };
  return el("span", {class: "settle"}, postId, postUrl,
    button("settle: published", published, {"data-settle": "published"}),
    button("settle: not published", () => settle(id, platform, {outcome: "not_published"}),
           {"data-settle": "not_published"}));
}

async function settle(id, platform, body) {
  try {
    const item = await call("POST", `/items/${segment(id)}/platforms/${segment(platform)}/resolve`, body);
    say(`Settled ${platform} of ${id} as ${body.outcome.replace("_", " ")}: the item is ${item.status}.`, "ok");
    if (openItem === id) await showItem(id);
  } catch (err) {
    report(`Settling ${platform} of ${id} failed`)(err);
  }
}

async function retry() {
  const id = openItem;
  $("retry").disabled = true;
  try {
    const item = await call("POST", `/items/${segment(id)}/retry`, {});
    say(`Retry sent: ${id} is ${item.status}.`, "ok");
    if (openItem === id) await showItem(id);
  } catch (err) {
    report(`Retrying ${id} failed`)(err);
  } finally {
    $("retry").disabled = false;
  }
}

// ---------- wiring ----------

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const pasted = $("token-input").value.trim();
    $("token-input").value = "";
    if (pasted) signIn(pasted);
  });
  $("sign-out").addEventListener("click", () => {
    signOut();
    say("Signed out.", "ok");
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("search-item").value.trim();
    if (id) {
      openItemView(id);
      return;
    }
    const fields = {};
    for (const [name, input] of Object.entries(FIELDS)) fields[name] = $(input).value.trim();
    search(fields, null, 1).catch(report("Search failed"));
  });
  $("search-next").addEventListener("click", () => {
    search(query, nextCursor, page + 1).catch(report("Search failed"));
  });
  $("dead-letters-refresh").addEventListener("click", () => {
    shownLetters = "";
    showDeadLetters().catch(report("Listing the dead letters failed"));
  });
  $("retry").addEventListener("click", retry);
  $("item-close").addEventListener("click", () => {
    openItem = null;
    $("item").hidden = true;
  });
  window.addEventListener("hashchange", () => {
    const fresh = tokenFromHash();
    if (fresh) signIn(fresh);
  });

  const found = tokenFromHash() || sessionStorage.getItem(TOKEN_KEY);
  if (found) signIn(found);
  else $("sign-in").hidden = false;
});
