/**
 * The model cache: whole model files kept on this device, in the Origin Private File System, or
 * in IndexedDB where OPFS cannot be written. Nothing is stored unless the caller asks (see
 * `LoadOptions.cache`); entries can be listed with their sizes and deleted.
 */

export interface CachedModel {
  /** The URL the model was fetched from. */
  key: string;
  bytes: number;
  /** Milliseconds since the epoch. */
  storedAt: number;
}

export type CacheStore = "opfs" | "indexeddb";

const DIRECTORY = "glassbox-models";
const DATABASE = "glassbox-models";

/** OPFS file names cannot hold `/`; the key is kept, reversibly, in the name. */
const fileName = (key: string) => encodeURIComponent(key);

async function opfsDirectory(): Promise<FileSystemDirectoryHandle | null> {
  try {
    const root = await navigator.storage.getDirectory();
    const directory = await root.getDirectoryHandle(DIRECTORY, { create: true });
    // Writing from a page needs createWritable, which some browsers offer only in workers.
    const probe = await directory.getFileHandle(".probe", { create: true });
    if (typeof probe.createWritable !== "function") return null;
    return directory;
  } catch {
    return null;
  }
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

async function database(): Promise<IDBDatabase> {
  const open = indexedDB.open(DATABASE, 1);
  open.onupgradeneeded = () => open.result.createObjectStore("models");
  return request(open);
}

interface StoredRecord {
  blob: Blob;
  storedAt: number;
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

  async list(): Promise<CachedModel[]> {
    const directory = await this.#directory();
    const found: CachedModel[] = [];
    if (directory !== null) {
      for await (const [name, handle] of directory as unknown as AsyncIterable<[string, FileSystemHandle]>) {
        if (handle.kind !== "file" || name === ".probe") continue;
        const file = await (handle as FileSystemFileHandle).getFile();
        // Empty until its write completes: a model file never is.
        if (file.size === 0) continue;
        found.push({ key: decodeURIComponent(name), bytes: file.size, storedAt: file.lastModified });
      }
    } else {
      const db = await database();
      const store = db.transaction("models").objectStore("models");
      const keys = (await request(store.getAllKeys())) as string[];
      const records = (await request(store.getAll())) as StoredRecord[];
      keys.forEach((key, i) => {
        const record = records[i];
        if (record !== undefined) found.push({ key, bytes: record.blob.size, storedAt: record.storedAt });
      });
      db.close();
    }
    return found.sort((a, b) => a.key.localeCompare(b.key));
  }

  /** The total bytes the cache holds. */
  async size(): Promise<number> {
    return (await this.list()).reduce((sum, entry) => sum + entry.bytes, 0);
  }

  async get(key: string): Promise<Blob | null> {
    const directory = await this.#directory();
    if (directory !== null) {
      try {
        return await (await directory.getFileHandle(fileName(key))).getFile();
      } catch {
        return null;
      }
    }
    const db = await database();
    const record = (await request(db.transaction("models").objectStore("models").get(key))) as StoredRecord | undefined;
    db.close();
    return record?.blob ?? null;
  }

  async put(key: string, blob: Blob): Promise<void> {
    const directory = await this.#directory();
    if (directory !== null) {
      const writable = await (await directory.getFileHandle(fileName(key), { create: true })).createWritable();
      try {
        await blob.stream().pipeTo(writable);
      } catch (e) {
        await directory.removeEntry(fileName(key)).catch(() => undefined);
        throw e;
      }
      return;
    }
    const db = await database();
    const done = db.transaction("models", "readwrite");
    done.objectStore("models").put({ blob, storedAt: Date.now() } satisfies StoredRecord, key);
    await new Promise<void>((resolve, reject) => {
      done.oncomplete = () => resolve();
      done.onerror = () => reject(done.error ?? new Error("IndexedDB write failed"));
    });
    db.close();
  }

  async delete(key: string): Promise<void> {
    const directory = await this.#directory();
    if (directory !== null) {
      await directory.removeEntry(fileName(key)).catch(() => undefined);
      return;
    }
    const db = await database();
    await request(db.transaction("models", "readwrite").objectStore("models").delete(key));
    db.close();
  }
}
