/**
 * The built-in user directory (USERS, or demo users in development). Passwords are hashed with
 * Bun.password (argon2id) once, and each plain text is dropped as soon as its hash exists.
 * Hashing is not on the path to ready: argon2id costs ~50–150 ms of CPU per password (64 MiB,
 * more on a busy machine), and four of them in Bun's thread pool on a 2-core machine delayed
 * `/readyz` by 20–50 ms while they fought the main thread for the cores. The server starts them
 * (`startHashing`) a moment after it listens; a login that arrives earlier starts them itself
 * and waits for its hash. A login for an unknown name still verifies against a dummy hash so
 * timing does not reveal which names exist.
 */
import type { User } from "../protocol/frames.ts";

interface Entry {
  user: User;
  /** The plain text until hashing starts; then dropped. */
  password: string | null;
  hash: Promise<string> | null;
}

export class UserDirectory {
  private dummyHash: Promise<string> | null = null;

  private constructor(private readonly entries: Map<string, Entry>) {}

  /** Hashes nothing yet: `startHashing()` (or the first `verify`) does. */
  static create(users: { name: string; password: string }[]): UserDirectory {
    const entries = new Map<string, Entry>();
    for (const u of users) entries.set(u.name, { user: { id: u.name, name: u.name }, password: u.password, hash: null });
    return new UserDirectory(entries);
  }

  /** Starts hashing every password (and the dummy) in the background; later calls do nothing. */
  startHashing(): void {
    if (this.dummyHash !== null) return;
    this.dummyHash = Bun.password.hash(crypto.randomUUID());
    for (const entry of this.entries.values()) {
      entry.hash = Bun.password.hash(entry.password ?? "");
      entry.password = null;
    }
  }

  /** Starts the hashing if it was not, and resolves when every hash is done; a failed hash rejects it. */
  async ready(): Promise<void> {
    this.startHashing();
    await Promise.all([this.dummyHash, ...[...this.entries.values()].map((e) => e.hash)]);
  }

  /** The user when the password matches, else null. Takes the same time for unknown names. */
  async verify(name: string, password: string): Promise<User | null> {
    this.startHashing();
    const entry = this.entries.get(name);
    const hash = await (entry?.hash ?? this.dummyHash!);
    const ok = await Bun.password.verify(password, hash).catch(() => false);
    return ok && entry !== undefined ? entry.user : null;
  }

  get size(): number {
    return this.entries.size;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }
}
