/**
 * The example's single page: the app's own sign-in form, then a room through the Switchboard SDK
 * loaded from Switchboard itself (`GET /client.js`). The socket is authenticated by the app's
 * HttpOnly cookie, which the browser sends with the upgrade (cookies are per host, not per port);
 * the page never holds a token.
 */
export function page(switchboardUrl: string): string {
  const sdk = new URL("/client.js", switchboardUrl).href;
  const ws = new URL("/ws", switchboardUrl.replace(/^http/, "ws")).href;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Example app · Switchboard</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  [hidden] { display: none !important; }
  #messages { list-style: none; padding: 0; border: 1px solid #ccc; min-height: 8rem; }
  #messages li { padding: .25rem .5rem; }
  #status { color: #555; }
</style>
</head>
<body>
<h1>Example app</h1>
<p id="status" data-state="signed-out">Signed out</p>
<form id="signin" hidden>
  <input id="username" placeholder="username" autocomplete="username" required>
  <input id="password" type="password" placeholder="password" autocomplete="current-password" required>
  <button>Sign in</button> <span id="signin-error" role="alert"></span>
</form>
<section id="room" hidden>
  <p>Signed in to the app as <b id="me"></b> · <button id="logout">Sign out</button></p>
  <p>In <code>room:lobby</code>: <span id="present"></span></p>
  <ul id="messages"></ul>
  <form id="composer"><input id="text" placeholder="Say something" autocomplete="off" required> <button>Send</button></form>
</section>
<script type="module">
import { createClient } from ${JSON.stringify(sdk)};
const $ = (id) => document.getElementById(id);
const status = (state, text) => { $("status").dataset.state = state; $("status").textContent = text; };
let client = null;
const present = new Set();
const showPresent = () => ($("present").textContent = [...present].sort().join(", "));
// The member list is read from the server, then kept by join/leave. Read it again after every
// reconnect: the join/leave frames sent while this page was offline never reach it.
async function readPresence(c, topic) {
  const members = await c.presence(topic);
  if (c !== client) return;
  present.clear();
  for (const m of members) present.add(m.user.id);
  showPresent();
}

function signedOut() {
  client?.close();
  client = null;
  present.clear();
  showPresent();
  $("room").hidden = true;
  $("signin").hidden = false;
  status("signed-out", "Signed out");
}

async function signedIn(user) {
  $("signin").hidden = true;
  $("room").hidden = false;
  $("me").textContent = user.name;
  $("messages").replaceChildren();
  status("connecting", "Connecting…");
  // No token, no ticket: the app's cookie goes with the upgrade (AUTH_COOKIE on Switchboard).
  const c = (client = createClient({ url: ${JSON.stringify(ws)} }));
  let sub = null;
  c.on("open", (w) => {
    status("open", "Connected to Switchboard as " + w.user.id);
    if (sub) readPresence(c, sub.topic).catch(() => {});
  });
  c.on("reconnecting", () => status("connecting", "Reconnecting…"));
  c.on("unauthorized", () => signedOut());
  sub = await c.subscribe("room:lobby", {
    onMessage: (m) => {
      const li = document.createElement("li");
      li.dataset.from = m.from;
      li.textContent = m.from + ": " + (m.data && typeof m.data.text === "string" ? m.data.text : JSON.stringify(m.data));
      $("messages").append(li);
    },
    onPresence: (e) => { e.type === "join" ? present.add(e.user.id) : present.delete(e.user.id); showPresent(); },
  });
  await readPresence(c, sub.topic);
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const res = await fetch("/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  if (!res.ok) return ($("signin-error").textContent = "Wrong username or password");
  $("signin-error").textContent = "";
  await signedIn((await res.json()).user);
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  $("text").value = "";
  client?.publish("room:lobby", { text }).catch((e) => status("error", "Not sent: " + e.message));
});

$("logout").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST" });
  signedOut();
});

const me = await fetch("/me");
if (me.ok) await signedIn((await me.json()).user);
else signedOut();
</script>
</body>
</html>
`;
}
