/** The rooms a user had open, kept per user in localStorage so that a reload reopens them. */
import { NAME } from "./model.ts";

const DEFAULT_ROOMS = ["lobby"];

const storageKey = (userId: string) => `switchboard-demo:rooms:${userId}`;

/** The saved room names (without `room:`), or the default rooms when none are saved or storage is off. */
export function savedRooms(userId: string): string[] {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey(userId)) ?? "null") as unknown;
    if (Array.isArray(saved)) return saved.filter((n): n is string => typeof n === "string" && NAME.test(n));
  } catch {}
  return DEFAULT_ROOMS;
}

export function saveRooms(userId: string, names: string[]): void {
  try {
    localStorage.setItem(storageKey(userId), JSON.stringify(names));
  } catch {}
}
