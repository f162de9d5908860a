/**
 * The built-in user directory (USERS, or demo users in development). Passwords are hashed at
 * start with Bun.password (argon2id) and the plain text is dropped; a login for an unknown name
 * still verifies against a dummy hash so timing does not reveal which names exist.
 */
import type { User } from "../protocol/frames.ts";

interface Entry {
  user: User;
  hash: string;
}

export class UserDirectory {
  private constructor(
    private readonly entries: Map<string, Entry>,
    private readonly dummyHash: string,
  ) {}

  static async create(users: { name: string; password: string }[]): Promise<UserDirectory> {
    const entries = new Map<string, Entry>();
    const hashes = await Promise.all(users.map((u) => Bun.password.hash(u.password)));
    users.forEach((u, i) => entries.set(u.name, { user: { id: u.name, name: u.name }, hash: hashes[i]! }));
    const dummyHash = await Bun.password.hash(crypto.randomUUID());
    return new UserDirectory(entries, dummyHash);
  }

  /** The user when the password matches, else null. Takes the same time for unknown names. */
  async verify(name: string, password: string): Promise<User | null> {
    const entry = this.entries.get(name);
    const ok = await Bun.password.verify(password, entry?.hash ?? this.dummyHash).catch(() => false);
    return ok && entry !== undefined ? entry.user : null;
  }

  get size(): number {
    return this.entries.size;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }
}
