/**
 * The model cache: whole model files kept on this device, in the Origin Private File System, or
 * in IndexedDB where OPFS cannot be written. Nothing is stored unless the caller asks (see
 * `LoadOptions.cache`); entries can be listed with their sizes and deleted.
 *
 * An entry is stored under the SHA-256 of its full URL, so the name on disk holds no signed
 * URL's token. A write ends by recording the file's size; an entry without that record, or whose
 * file has another size (a write cut short by a closed tab or a full disk), is never returned or
 * listed, and is removed where it is found.
 */
import { shownUrl } from "./source.js";

export interface CachedModel {
  /** The entry, for `delete`: the SHA-256 of the URL the model was fetched from, in hex. */
  key: string;
  /** That URL without its query, fragment or credentials, which may hold a signed URL's secrets. */
  name: string;
  bytes: number;
  /** Milliseconds since the epoch. */
  storedAt: number;
}

export type CacheStore = "opfs" | "indexeddb";

const DIRECTORY = "glassbox-models";
const DATABASE = "glassbox-models";
const PROBE = ".probe";
/** The suffix of an OPFS entry's completion record, beside its model file. */
const RECORD = ".json";
const KEY = /^[0-9a-f]{64}$/;
const KEY_PREFIX = /^[0-9a-f]{64}/;

/** What a completed write records. */
interface Completion {
  name: string;
  bytes: number;
  storedAt: number;
}

/** An IndexedDB entry: the model and its completion record, written in one transaction. */
interface StoredRecord extends Completion {
  blob: Blob;
}

async function keyOf(url: string): Promise<string> {
  const href = new URL(url, globalThis.location?.href).href;
  if (crypto.subtle === undefined) throw new Error("the model cache needs a secure context (https: or localhost)");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(href));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The Web Lock an entry's writer holds, seen by every tab and worker of the origin. */
const lockName = (key: string) => `${DIRECTORY}/${key}`;

function isCompletion(value: unknown): value is Completion {
  if (typeof value !== "object" || value === null) return false;
  const { name, bytes, storedAt } = value as Record<string, unknown>;
  return typeof name === "string" && Number.isSafeInteger(bytes) && typeof storedAt === "number";
}

async function opfsDirectory(): Promise<FileSystemDirectoryHandle | null> {
  try {
    const root = await navigator.storage.getDirectory();
    const directory = await root.getDirectoryHandle(DIRECTORY, { create: true });
    // Writing from a page needs createWritable, which some browsers offer only in workers.
    const probe = await directory.getFileHandle(PROBE, { create: true });
    if (typeof probe.createWritable !== "function") return null;
    return directory;
  } catch {
    return null;
  }
}

async function opfsFile(directory: FileSystemDirectoryHandle, name: string): Promise<File | null> {
  try {
    return await (await directory.getFileHandle(name)).getFile();
  } catch {
    return null;
  }
}

async function opfsWrite(directory: FileSystemDirectoryHandle, name: string, blob: Blob): Promise<void> {
  const writable = await (await directory.getFileHandle(name, { create: true })).createWritable();
  await blob.stream().pipeTo(writable);
}

/** Removes an OPFS entry's files, its record first: a file without a record is never taken for whole. */
async function opfsRemove(directory: FileSystemDirectoryHandle, key: string, names: string[] = [key]): Promise<void> {
  await directory.removeEntry(key + RECORD).catch(() => undefined);
  for (const name of names) await directory.removeEntry(name).catch(() => undefined);
}

/**
 * The entry's file and record when it is whole; an incomplete one is removed. Null as well while
 * a write (from any tab) holds the entry: a file being written is not yet whole, nor abandoned.
 */
async function opfsWhole(directory: FileSystemDirectoryHandle, key: string, names?: string[]): Promise<{ file: File; record: Completion } | null> {
  return await navigator.locks.request(lockName(key), { ifAvailable: true }, async (lock) => {
    if (lock === null) return null;
    const [file, text] = await Promise.all([opfsFile(directory, key), opfsFile(directory, key + RECORD).then((f) => f?.text())]);
    let record: unknown = null;
    try {
      record = text === undefined ? null : JSON.parse(text);
    } catch {
      // A record cut short: the entry is incomplete.
    }
    if (file !== null && isCompletion(record) && record.bytes === file.size) return { file, record };
    await opfsRemove(directory, key, names);
    return null;
  });
}

function isWhole(record: Partial<StoredRecord>): record is StoredRecord {
  const { blob } = record;
  return blob instanceof Blob && isCompletion(record) && record.bytes === blob.size;
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

function committed(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error ?? new Error("IndexedDB write failed"));
  });
}

async function database(): Promise<IDBDatabase> {
  const open = indexedDB.open(DATABASE, 1);
  open.onupgradeneeded = () => open.result.createObjectStore("models");
  return request(open);
}

async function idbRemove(db: IDBDatabase, keys: IDBValidKey[]): Promise<void> {
  const transaction = db.transaction("models", "readwrite");
  for (const key of keys) transaction.objectStore("models").delete(key);
  await committed(transaction);
}

export class ModelCache {
  #opfs: Promise<FileSystemDirectoryHandle | null> | null = null;

  #directory(): Promise<FileSystemDirectoryHandle | null> {
    this.#opfs ??= opfsDirectory();
    return this.#opfs;
  }

  /** Which storage this browser gives the cache. */
  async store(): Promise<CacheStore> {
    return (await this.#directory()) === null ? "indexeddb" : "opfs";
  }

  /** The whole entries, by name; incomplete ones found on the way are removed. */
  async list(): Promise<CachedModel[]> {
    const directory = await this.#directory();
    const found: CachedModel[] = [];
    if (directory !== null) {
      const names = new Map<string, string[]>();
      // The entries' iterator is typed only with the DOM.AsyncIterable library, which the shell leaves out.
      for await (const [name] of directory as unknown as AsyncIterable<[string, FileSystemHandle]>) {
        if (name === PROBE) continue;
        // A browser may keep a write's swap file beside the file, named after it.
        const key = KEY_PREFIX.exec(name)?.[0] ?? name;
        names.set(key, [...(names.get(key) ?? []), name]);
      }
      for (const [key, files] of names) {
        const whole = await opfsWhole(directory, key, files);
        if (whole !== null) found.push({ key, name: whole.record.name, bytes: whole.file.size, storedAt: whole.record.storedAt });
      }
    } else {
      const db = await database();
      const store = db.transaction("models").objectStore("models");
      const [keys, records] = await Promise.all([request(store.getAllKeys()), request(store.getAll() as IDBRequest<Partial<StoredRecord>[]>)]);
      const incomplete: IDBValidKey[] = [];
      keys.forEach((key, i) => {
        const record = records[i];
        if (record !== undefined && typeof key === "string" && isWhole(record)) {
          found.push({ key, name: record.name, bytes: record.bytes, storedAt: record.storedAt });
        } else {
          incomplete.push(key);
        }
      });
      if (incomplete.length > 0) await idbRemove(db, incomplete);
      db.close();
    }
    return found.sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
  }

  /** The total bytes the cache holds. */
  async size(): Promise<number> {
    return (await this.list()).reduce((sum, entry) => sum + entry.bytes, 0);
  }

  /** The model stored for `url`, if it was stored whole. */
  async get(url: string): Promise<Blob | null> {
    const key = await keyOf(url);
    const directory = await this.#directory();
    if (directory !== null) return (await opfsWhole(directory, key))?.file ?? null;
    const db = await database();
    try {
      const record = (await request(db.transaction("models").objectStore("models").get(key))) as Partial<StoredRecord> | undefined;
      if (record === undefined) return null;
      if (isWhole(record)) return record.blob;
      await idbRemove(db, [key]);
      return null;
    } finally {
      db.close();
    }
  }

  async put(url: string, blob: Blob): Promise<void> {
    const key = await keyOf(url);
    const completion: Completion = { name: shownUrl(url), bytes: blob.size, storedAt: Date.now() };
    const directory = await this.#directory();
    if (directory !== null) {
      await navigator.locks.request(lockName(key), async () => {
        // An earlier write's record must not vouch for this write's file.
        await directory.removeEntry(key + RECORD).catch(() => undefined);
        try {
          await opfsWrite(directory, key, blob);
          await opfsWrite(directory, key + RECORD, new Blob([JSON.stringify(completion)]));
        } catch (e) {
          await opfsRemove(directory, key);
          throw e;
        }
      });
      return;
    }
    const db = await database();
    const transaction = db.transaction("models", "readwrite");
    transaction.objectStore("models").put({ blob, ...completion } satisfies StoredRecord, key);
    try {
      await committed(transaction);
    } finally {
      db.close();
    }
  }

  /** Deletes an entry: a `key` from `list()`, or the URL the model was fetched from. */
  async delete(keyOrUrl: string): Promise<void> {
    const key = KEY.test(keyOrUrl) ? keyOrUrl : await keyOf(keyOrUrl);
    const directory = await this.#directory();
    if (directory !== null) {
      await navigator.locks.request(lockName(key), () => opfsRemove(directory, key));
      return;
    }
    const db = await database();
    try {
      await idbRemove(db, [key]);
    } finally {
      db.close();
    }
  }
}
