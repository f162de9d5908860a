/**
 * The demo page's entry (bundled to /demo/app.js): signs in or picks up the session, then runs
 * a Chat until sign-out or until the session ends.
 */
import type { User } from "../../client/index.ts";
import { currentUser, login, logout } from "./auth.ts";
import { Chat } from "./chat.ts";
import { byId } from "./dom.ts";
import { NAME } from "./model.ts";
import { privateRoomsOn } from "./private-rooms.ts";
import { StatusView } from "./status.ts";

const status = new StatusView();
const signinView = byId("signin-view");
const chatView = byId("chat-view");
const account = byId("account");
const meName = byId("me-name");
const form = byId<HTMLFormElement>("signin-form");
const username = byId<HTMLInputElement>("username");
const password = byId<HTMLInputElement>("password");
const submit = byId<HTMLButtonElement>("signin-submit");
const signinError = byId("signin-error");
const signinNotice = byId("signin-notice");
const demoUsers = [...document.querySelectorAll<HTMLButtonElement>("button.demo-user")];

let chat: Chat | null = null;

function showSignIn(notice: string | null): void {
  chat = null;
  account.hidden = true;
  chatView.hidden = true;
  signinView.hidden = false;
  signinNotice.hidden = notice === null;
  signinNotice.textContent = notice ?? "";
  status.set("signed-out", "Signed out");
  status.clear();
  document.title = "Sign in · Switchboard demo chat";
  username.focus();
}

function showChat(user: User): void {
  signinView.hidden = true;
  chatView.hidden = false;
  account.hidden = false;
  meName.textContent = user.name;
  document.title = `${user.name} · Switchboard demo chat`;
  chat = new Chat({
    me: user,
    status,
    knownUsers: demoUsers.map((b) => b.dataset.username ?? "").filter(Boolean),
    onSessionEnded: () => showSignIn("Your session ended: you signed out in another tab, or it expired. Sign in again."),
  });
  chat.start();
  byId("composer-input").focus();
}

async function signIn(name: string, secret: string): Promise<void> {
  signinError.textContent = "";
  if (name.trim() === "" || secret === "") {
    signinError.textContent = "Enter a username and a password.";
    (name.trim() === "" ? username : password).focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = "Signing in…";
  try {
    const result = await login(name.trim(), secret);
    if (!result.ok) {
      signinError.textContent = result.message;
      password.select();
      password.focus();
      return;
    }
    password.value = "";
    showChat(result.user);
  } finally {
    submit.disabled = false;
    submit.textContent = "Sign in";
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  void signIn(username.value, password.value);
});

for (const button of demoUsers) {
  button.addEventListener("click", () => {
    username.value = button.dataset.username ?? "";
    password.value = button.dataset.password ?? "";
    void signIn(username.value, password.value);
  });
}

byId("sign-out").addEventListener("click", async () => {
  const running = chat;
  status.set("closed", "Signing out…");
  // The server revokes the session and closes its sockets (4001) on every machine; stopping the
  // client first makes this tab's own close a clean 1000 without waiting for that.
  running?.stop();
  const done = await logout();
  showSignIn(done ? "You signed out." : "The server could not be reached: your session may still be active. Reload and sign out again.");
});

// --- The chat pane's controls -----------------------------------------------------------------

const composer = byId<HTMLFormElement>("composer");
const composerInput = byId<HTMLInputElement>("composer-input");
composer.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = composerInput.value;
  if (!chat || text.trim() === "") return;
  chat.send(text);
  composerInput.value = "";
});

function nameForm(formId: string, inputId: string, errorId: string, what: string, act: (name: string) => void): void {
  const f = byId<HTMLFormElement>(formId);
  const input = byId<HTMLInputElement>(inputId);
  const error = byId(errorId);
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = input.value.trim().replace(/^(room|user):/, "");
    if (!NAME.test(name)) {
      error.textContent = `A ${what} name uses letters, digits, _ . - (up to 120).`;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    input.value = "";
    act(name);
    composerInput.focus();
  });
}

nameForm("join-form", "join-input", "join-error", "room", (name) => chat?.select(chat.joinRoom(name)));
nameForm("dm-form", "dm-input", "dm-error", "user", (name) => chat?.select(chat.openDm(name)));

// Private rooms (only when the server offers them: the demo as shipped).
if (privateRoomsOn()) {
  byId("private-form").hidden = false;
  nameForm("private-form", "private-input", "private-error", "room", (name) => {
    const error = byId("private-error");
    chat?.createPrivate(name).then(
      (key) => chat?.select(key),
      (e: Error) => (error.textContent = `Could not create it: ${e.message}`),
    );
  });
}

const inviteForm = byId<HTMLFormElement>("invite-form");
const inviteInput = byId<HTMLInputElement>("invite-input");
const inviteNote = byId("invite-note");
inviteForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const user = inviteInput.value.trim();
  if (!chat || user === "") return;
  inviteNote.textContent = "Inviting…";
  chat.invite(user).then(
    (line) => {
      inviteNote.textContent = line;
      inviteInput.value = "";
    },
    (error: Error) => (inviteNote.textContent = `Not invited: ${error.message}`),
  );
});

byId("leave-room").addEventListener("click", () => {
  const key = chat?.activeKey;
  if (key) void chat?.leaveRoom(key);
});

// --- Start ------------------------------------------------------------------------------------

try {
  const user = await currentUser();
  if (user) showChat(user);
  else showSignIn(null);
} catch {
  showSignIn("The server could not be reached. Reload the page to try again.");
}
