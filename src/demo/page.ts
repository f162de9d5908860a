/**
 * The demo chat's HTML (server side). Static markup only: the behaviour is in the bundled
 * script (`/demo/app.js`) and the looks in `/demo/app.css`, so the page runs under a CSP with no
 * inline script or style. The demo users are rendered from the server's configuration, and only
 * outside production (where the list is empty anyway). The sign-in form says `method="post"`: if
 * the script ever fails to load, a submitted password goes in a body, never into a URL or a log.
 */

export interface DemoUser {
  name: string;
  password: string;
}

export interface PageOptions {
  /** Users offered as one-click sign-ins; pass none in production. */
  demoUsers: readonly DemoUser[];
  /** Appended to asset URLs so a deploy never serves a stale script to a cached page. */
  version: string;
  /** The demo as shipped: private rooms exist (src/http/demo-private.ts) and the page offers them. */
  privateRooms?: boolean;
}

/** A small switchboard-plug logo as a data URI (CSP: img-src allows data:). */
const ICON =
  "data:image/svg+xml," +
  encodeURIComponent(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#4338ca"/><circle cx="11" cy="11" r="3.5" fill="#fff"/><circle cx="21" cy="21" r="3.5" fill="#fff"/><path d="M11 11 21 21" stroke="#fff" stroke-width="2.5"/></svg>`,
  );

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function demoUsersSection(users: readonly DemoUser[]): string {
  if (users.length === 0) return "";
  const items = users
    .map(
      (u) =>
        `<li><button type="button" class="demo-user" data-username="${escapeHtml(u.name)}" data-password="${escapeHtml(u.password)}">` +
        `<span class="avatar" aria-hidden="true">${escapeHtml(u.name.slice(0, 1).toUpperCase())}</span>` +
        `<span class="demo-user-name">Sign in as ${escapeHtml(u.name)}</span>` +
        `<span class="demo-user-password">password: <code>${escapeHtml(u.password)}</code></span></button></li>`,
    )
    .join("");
  return `<section class="demo-users" aria-labelledby="demo-users-title">
        <h2 id="demo-users-title">Demo users</h2>
        <p class="hint">Development mode only. Open a second window (or a private one) to chat with yourself.</p>
        <ul>${items}</ul>
      </section>`;
}

export function renderPage(options: PageOptions): string {
  const v = encodeURIComponent(options.version);
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light">
  <title>Switchboard · demo chat</title>
  <link rel="icon" href="${ICON}">
  <link rel="stylesheet" href="/demo/app.css?v=${v}">
  <script type="module" src="/demo/app.js?v=${v}"></script>
</head>
<body${options.privateRooms === true ? ' data-private-rooms="on"' : ""}>
  <a class="skip-link" href="#main">Skip to content</a>
  <header class="topbar">
    <div class="brand"><img src="${ICON}" alt="" width="28" height="28"><span>Switchboard</span><span class="tag">demo chat</span></div>
    <p id="status" class="status" data-state="idle" role="status" aria-live="polite">
      <span class="dot" aria-hidden="true"></span><span id="status-text">Starting…</span>
    </p>
    <div id="account" class="account" hidden>
      <span class="who">Signed in as <strong id="me-name"></strong></span>
      <button id="sign-out" type="button" class="btn ghost">Sign out</button>
    </div>
  </header>

  <main id="main" tabindex="-1">
    <noscript><p class="notice">The demo chat needs JavaScript.</p></noscript>

    <section id="signin-view" class="signin" aria-labelledby="signin-title" hidden>
      <div class="card">
        <h1 id="signin-title">Sign in to the demo chat</h1>
        <p class="lead">Rooms, presence and direct messages over one WebSocket, authenticated by an HttpOnly session cookie.</p>
        <p id="signin-notice" class="notice" role="status" hidden></p>
        <form id="signin-form" class="form" method="post" action="/auth/login" novalidate>
          <label for="username">Username</label>
          <input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required>
          <label for="password">Password</label>
          <input id="password" name="password" type="password" autocomplete="current-password" required>
          <p id="signin-error" class="error" role="alert"></p>
          <button id="signin-submit" type="submit" class="btn primary wide">Sign in</button>
        </form>
        ${demoUsersSection(options.demoUsers)}
      </div>
    </section>

    <div id="chat-view" class="chat" hidden>
      <nav class="sidebar" aria-label="Conversations">
        <h2 id="rooms-title">Rooms</h2>
        <ul id="room-list" class="conv-list" aria-labelledby="rooms-title"></ul>
        <form id="join-form" class="mini-form" novalidate>
          <label for="join-input">Join a room</label>
          <div class="field-row">
            <span class="prefix" aria-hidden="true">room:</span>
            <input id="join-input" name="room" placeholder="e.g. support" autocomplete="off" spellcheck="false" maxlength="120" aria-describedby="join-error">
            <button type="submit" class="btn">Join</button>
          </div>
          <p id="join-error" class="error small" role="alert"></p>
        </form>

        <form id="private-form" class="mini-form" novalidate hidden>
          <label for="private-input">New private room</label>
          <div class="field-row">
            <input id="private-input" name="room" placeholder="e.g. plans" autocomplete="off" spellcheck="false" maxlength="100" aria-describedby="private-error">
            <button type="submit" class="btn">Create</button>
          </div>
          <p id="private-error" class="error small" role="alert"></p>
        </form>

        <h2 id="dms-title">Direct messages</h2>
        <ul id="dm-list" class="conv-list" aria-labelledby="dms-title"></ul>
        <form id="dm-form" class="mini-form" novalidate>
          <label for="dm-input">Message a user</label>
          <div class="field-row">
            <input id="dm-input" name="user" list="known-users" placeholder="user name" autocomplete="off" spellcheck="false" maxlength="120" aria-describedby="dm-error">
            <button type="submit" class="btn">Open</button>
          </div>
          <datalist id="known-users"></datalist>
          <p id="dm-error" class="error small" role="alert"></p>
        </form>
      </nav>

      <section class="conversation" aria-labelledby="conv-title">
        <header class="conv-head">
          <div>
            <h1 id="conv-title">…</h1>
            <p id="conv-subtitle" class="muted"></p>
          </div>
          <form id="invite-form" class="invite-form" novalidate hidden>
            <label for="invite-input" class="visually-hidden">Invite a user</label>
            <input id="invite-input" name="user" list="known-users" placeholder="user name" autocomplete="off" spellcheck="false" maxlength="120">
            <button type="submit" class="btn">Invite</button>
            <span id="invite-note" class="muted small" role="status"></span>
          </form>
          <button id="leave-room" type="button" class="btn ghost" hidden>Leave room</button>
        </header>
        <ol id="messages" class="messages" role="log" aria-live="polite" aria-labelledby="conv-title" tabindex="0"></ol>
        <form id="composer" class="composer" novalidate>
          <label for="composer-input" class="visually-hidden">Message</label>
          <input id="composer-input" name="text" autocomplete="off" maxlength="2000" placeholder="Write a message">
          <button id="composer-send" type="submit" class="btn primary">Send</button>
        </form>
      </section>

      <aside class="side-panel">
        <section aria-labelledby="presence-title">
          <h2 id="presence-title">In this room</h2>
          <ul id="presence-list" class="presence-list"></ul>
        </section>
        <section aria-labelledby="connection-title">
          <h2 id="connection-title">Connection</h2>
          <dl class="facts">
            <dt>Instance</dt><dd id="conn-instance">—</dd>
            <dt>Region</dt><dd id="conn-region">—</dd>
          </dl>
          <ol id="conn-log" class="conn-log" aria-label="Connection events"></ol>
        </section>
      </aside>
    </div>
  </main>
</body>
</html>`;
}
