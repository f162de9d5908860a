/**
 * The built-in user directory (USERS, or demo users in development). Passwords are hashed with
 * Bun.password (argon2id) once, in the background from the moment the directory is built, and
 * each plain text is dropped as soon as its hash exists. Hashing is not on the path to ready:
 * argon2id costs ~50–150 ms per password of CPU (more on a busy machine), and a process must be
 * in service at once after a scale-out. A login that arrives before its hash is done waits for
 * it. A login for an unknown name still verifies against a dummy hash so timing does not reveal
 * which names exist.
 */
import type { User } from "../protocol/frames.ts";

interface Entry {
  user: User;
  hash: Promise<string>;
}

export class UserDirectory {
  private constructor(
    private readonly entries: Map<string, Entry>,
    private readonly dummyHash: Promise<string>,
  ) {}

  /** Starts the hashing and returns at once; `ready()` resolves when every hash is done. */
  static create(users: { name: string; password: string }[]): UserDirectory {
    const entries = new Map<string, Entry>();
    for (const u of users) entries.set(u.name, { user: { id: u.name, name: u.name }, hash: Bun.password.hash(u.password) });
    return new UserDirectory(entries, Bun.password.hash(crypto.randomUUID()));
  }

  /** Resolves once every password (and the dummy) is hashed; a failed hash rejects it. */
  async ready(): Promise<void> {
    await Promise.all([this.dummyHash, ...[...this.entries.values()].map((e) => e.hash)]);
  }

  /** The user when the password matches, else null. Takes the same time for unknown names. */
  async verify(name: string, password: string): Promise<User | null> {
    const entry = this.entries.get(name);
    const hash = await (entry?.hash ?? this.dummyHash);
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
