import type { V1Lease } from '@kubernetes/client-node';

/**
 * A Lease in Kubernetes' protobuf encoding, for the update made on every hand-over: kube-apiserver
 * decodes and answers protobuf for less CPU than JSON (ADR 15). The fields are those of
 * k8s.io/api coordination/v1 and apimachinery meta/v1 (generated.proto). A decoded field this
 * does not know is kept, as its bytes, on the object that holds it (`unknownFields`, invisible to
 * JSON) and written back as it came, as long as the object is (`toLease` keeps the metadata and
 * the spec it read, writing only the lock's own fields); an object with a JSON key this does not
 * know is not encoded (undefined: it goes as JSON).
 */
export const protobuf = 'application/vnd.kubernetes.protobuf';

/** Every protobuf body of kube-apiserver starts with these four bytes ("k8s\0"). */
const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

type Json = Record<string, unknown>;

/** A decoded message's fields this does not know, as they came (tag and all). */
export const unknownFields = Symbol('unknownFields');

type Message = Json & { [unknownFields]?: Buffer };

// --- encoding -------------------------------------------------------------------------------

/** Field bytes: a message is the concatenation of its fields. */
class Writer {
  private readonly parts: Buffer[] = [];
  private length = 0;

  private push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }

  private varint(value: number): void {
    const bytes: number[] = [];
    let v = value;
    while (v > 127) {
      bytes.push((v % 128) | 128);
      v = Math.floor(v / 128);
    }
    bytes.push(v);
    this.push(Buffer.from(bytes));
  }

  private tag(field: number, wire: 0 | 2): void {
    this.varint(field * 8 + wire);
  }

  /** An int32 or int64 (`max`: 2^31 - 1 for int32); a negative one is ten bytes, as Go writes it. */
  int(field: number, value: number | undefined, max = Number.MAX_SAFE_INTEGER): this {
    if (value === undefined) return this;
    if (!Number.isSafeInteger(value) || value > max || value < -max - 1)
      throw new Unencodable(`field ${field}`);
    this.tag(field, 0);
    if (value >= 0) this.varint(value);
    else {
      const bytes: number[] = [];
      let v = BigInt.asUintN(64, BigInt(value));
      for (; v > 127n; v >>= 7n) bytes.push(Number(v & 127n) | 128);
      bytes.push(Number(v));
      this.push(Buffer.from(bytes));
    }
    return this;
  }

  bool(field: number, value: boolean | undefined): this {
    return value === undefined ? this : this.int(field, value ? 1 : 0);
  }

  bytes(field: number, value: Buffer | undefined): this {
    if (value === undefined) return this;
    this.tag(field, 2);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string | undefined): this {
    return value === undefined ? this : this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, value: Writer | undefined): this {
    return value === undefined ? this : this.bytes(field, value.done());
  }

  /** The fields of `object` that were decoded but not known, written back as they came. */
  unknown(object: Message): this {
    const raw = object[unknownFields];
    if (raw) this.push(raw);
    return this;
  }

  done(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

const int32 = 2 ** 31 - 1;

/** Something in the object this encoder does not know: the object goes as JSON. */
class Unencodable extends Error {}

/** `value`'s keys other than `known` that carry something. */
function only(value: unknown, known: readonly string[]): Message {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Unencodable('not an object');
  const object = value as Message;
  for (const key of Object.keys(object))
    if (object[key] !== undefined && !known.includes(key)) throw new Unencodable(key);
  return object;
}

interface Types {
  string: string;
  number: number;
  boolean: boolean;
}

/** `value` when it has JavaScript type `type`; undefined for null or undefined. */
function typed<K extends keyof Types>(value: unknown, type: K): Types[K] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== type) throw new Unencodable(`not a ${type}`);
  return value as Types[K];
}

/** meta/v1 Time and MicroTime: seconds (1) and nanoseconds (2), from a Date or RFC 3339 text. */
function time(value: unknown): Writer | undefined {
  if (value === undefined || value === null) return undefined;
  let ms: number;
  let nanosWithinMs = 0;
  if (value instanceof Date) ms = value.getTime();
  else if (typeof value === 'string') {
    ms = Date.parse(value);
    // Microseconds and nanoseconds that Date.parse drops: a MicroTime written back is unchanged.
    const fraction = /\.(\d+)Z$/.exec(value)?.[1];
    if (fraction) nanosWithinMs = Number(fraction.slice(3, 9).padEnd(6, '0'));
  } else throw new Unencodable('not a time');
  if (!Number.isFinite(ms)) throw new Unencodable('not a time');
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000 + nanosWithinMs;
  return new Writer().int(1, seconds).int(2, nanos || undefined, int32);
}

/**
 * A message's plain fields, each once: its JSON key, its number and its kind. The others (maps,
 * lists, nested messages) are read and written by hand beside them.
 */
type Schema = readonly (readonly [key: string, field: number, kind: Kind])[];
type Kind = 'string' | 'int64' | 'int32' | 'bool' | 'time' | 'microtime';

const ownerReferenceFields: Schema = [
  ['kind', 1, 'string'],
  ['name', 3, 'string'],
  ['uid', 4, 'string'],
  ['apiVersion', 5, 'string'],
  ['controller', 6, 'bool'],
  ['blockOwnerDeletion', 7, 'bool'],
];
/** Also `fieldsV1` (7). */
const managedFieldsEntryFields: Schema = [
  ['manager', 1, 'string'],
  ['operation', 2, 'string'],
  ['apiVersion', 3, 'string'],
  ['time', 4, 'time'],
  ['fieldsType', 6, 'string'],
  ['subresource', 8, 'string'],
];
/** Also labels (11), annotations (12), ownerReferences (13), finalizers (14), managedFields (17). */
const objectMetaFields: Schema = [
  ['name', 1, 'string'],
  ['generateName', 2, 'string'],
  ['namespace', 3, 'string'],
  ['selfLink', 4, 'string'],
  ['uid', 5, 'string'],
  ['resourceVersion', 6, 'string'],
  ['generation', 7, 'int64'],
  ['creationTimestamp', 8, 'time'],
  ['deletionTimestamp', 9, 'time'],
  ['deletionGracePeriodSeconds', 10, 'int64'],
];
const leaseSpecFields: Schema = [
  ['holderIdentity', 1, 'string'],
  ['leaseDurationSeconds', 2, 'int32'],
  ['acquireTime', 3, 'microtime'],
  ['renewTime', 4, 'microtime'],
  ['leaseTransitions', 5, 'int32'],
  ['strategy', 6, 'string'],
  ['preferredHolder', 7, 'string'],
];

/**
 * `value` as a message of `schema`'s fields and `others` (written by `more`), then the fields it
 * was decoded with but not known here.
 */
function encode(
  value: unknown,
  schema: Schema,
  others: readonly string[] = [],
  more?: (w: Writer, o: Message) => void,
): Writer {
  const o = only(value, [...schema.map(([key]) => key), ...others]);
  const w = new Writer();
  for (const [key, field, kind] of schema) {
    const v = o[key];
    if (kind === 'string') w.string(field, typed(v, 'string'));
    else if (kind === 'bool') w.bool(field, typed(v, 'boolean'));
    else if (kind === 'int64') w.int(field, typed(v, 'number'));
    else if (kind === 'int32') w.int(field, typed(v, 'number'), int32);
    else w.message(field, time(v));
  }
  more?.(w, o);
  return w.unknown(o);
}

function stringMap(field: number, value: unknown, into: Writer): void {
  for (const [k, v] of Object.entries(only(value ?? {}, Object.keys(value ?? {}))))
    if (v !== undefined)
      into.message(field, new Writer().string(1, k).string(2, typed(v, 'string')));
}

function list(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new Unencodable('not a list');
  return value;
}

function objectMeta(value: unknown): Writer {
  const others = ['labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields'];
  return encode(value, objectMetaFields, others, (w, m) => {
    stringMap(11, m.labels, w);
    stringMap(12, m.annotations, w);
    for (const o of list(m.ownerReferences)) w.message(13, encode(o, ownerReferenceFields));
    for (const f of list(m.finalizers)) w.string(14, typed(f, 'string'));
    for (const e of list(m.managedFields))
      w.message(
        17,
        encode(e, managedFieldsEntryFields, ['fieldsV1'], (entry, { fieldsV1 }) => {
          if (fieldsV1 !== undefined && fieldsV1 !== null)
            entry.message(7, new Writer().string(1, JSON.stringify(fieldsV1)));
        }),
      );
  });
}

/** The Lease as a protobuf body, or undefined when it carries anything not known here. */
export function encodeLease(lease: V1Lease): Buffer | undefined {
  try {
    const l = only(lease, ['apiVersion', 'kind', 'metadata', 'spec']);
    const raw = new Writer()
      .message(1, objectMeta(l.metadata ?? {}))
      .message(2, encode(l.spec ?? {}, leaseSpecFields))
      .unknown(l);
    const unknown = new Writer()
      .message(1, new Writer().string(1, 'coordination.k8s.io/v1').string(2, 'Lease'))
      .message(2, raw)
      .done();
    return Buffer.concat([magic, unknown]);
  } catch (error) {
    if (error instanceof Unencodable) return undefined;
    throw error;
  }
}

// --- decoding -------------------------------------------------------------------------------

/** Bytes that are not the object expected. */
export class Undecodable extends Error {}

interface Field {
  readonly field: number;
  /** The varint's value (wire type 0). */
  readonly int: bigint;
  /** The bytes (wire type 2). */
  readonly bytes: Buffer;
  /** The whole field, tag and all. */
  readonly raw: Buffer;
}

const none = Buffer.alloc(0);

function* fields(b: Buffer): Generator<Field> {
  let at = 0;
  // Up to ten bytes, summed exactly (a negative int64 is ten bytes of two's complement).
  const varint = (): bigint => {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (at >= b.length) break;
      const byte = b[at++] as number;
      value |= BigInt(byte & 127) << shift;
      if (byte < 128) return value;
    }
    throw new Undecodable('a truncated varint');
  };
  const skip = (n: number) => {
    if (at + n > b.length) throw new Undecodable('a truncated field');
    at += n;
  };
  while (at < b.length) {
    const start = at;
    const key = Number(varint() & 0xffffffffn);
    const field = key >>> 3;
    const wire = key & 7;
    let int = 0n;
    let bytes: Buffer = none;
    if (wire === 0) int = varint();
    else if (wire === 2) {
      const length = varint();
      if (length > BigInt(b.length)) throw new Undecodable('a truncated field');
      skip(Number(length));
      bytes = b.subarray(at - Number(length), at);
    } else if (wire === 1) skip(8);
    else if (wire === 5) skip(4);
    else throw new Undecodable(`wire type ${wire}`);
    yield { field, int, bytes, raw: b.subarray(start, at) };
  }
}

/** Collects a message's unknown fields, and puts them on it. */
function unknowns() {
  const raw: Buffer[] = [];
  return {
    add: (f: Field) => void raw.push(f.raw),
    on: <T extends Message>(message: T): T => {
      if (raw.length) message[unknownFields] = Buffer.concat(raw);
      return message;
    },
  };
}

const str = (f: Field) => f.bytes.toString('utf8');

/** int32/int64 varints as Kubernetes writes them: negative ones are ten bytes, two's complement. */
const signed = (f: Field) => Number(BigInt.asIntN(64, f.int));

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** meta/v1 Time as JSON writes it (whole seconds), or MicroTime (six fractional digits). */
function decodeTime(b: Buffer, micro: boolean): string {
  let seconds = 0;
  let nanos = 0;
  for (const f of fields(b)) {
    if (f.field === 1) seconds = signed(f);
    else if (f.field === 2) nanos = signed(f);
  }
  const date = new Date(seconds * 1000);
  if (Number.isNaN(date.getTime()) || nanos < 0 || nanos >= 1e9)
    throw new Undecodable('a time out of range');
  const iso = date.toISOString().slice(0, 19);
  return micro ? `${iso}.${pad(Math.floor(nanos / 1000), 6)}Z` : `${iso}Z`;
}

function decodeMapEntry(b: Buffer): [string, string] {
  let key = '';
  let value = '';
  for (const f of fields(b)) {
    if (f.field === 1) key = str(f);
    else if (f.field === 2) value = str(f);
  }
  return [key, value];
}

/**
 * A message of `schema`'s fields, and of those `more` reads (true: it did); the rest are kept as
 * they came.
 */
function decode(b: Buffer, schema: Schema, more?: (f: Field, into: Message) => boolean): Message {
  const m: Message = {};
  const unknown = unknowns();
  for (const f of fields(b)) {
    const known = schema.find(([, field]) => field === f.field);
    if (known) {
      const [key, , kind] = known;
      if (kind === 'string') m[key] = str(f);
      else if (kind === 'bool') m[key] = f.int !== 0n;
      else if (kind === 'time' || kind === 'microtime')
        m[key] = decodeTime(f.bytes, kind === 'microtime');
      else m[key] = signed(f);
    } else if (!more?.(f, m)) unknown.add(f);
  }
  return unknown.on(m);
}

function json(f: Field): unknown {
  try {
    return JSON.parse(str(f)) as unknown;
  } catch {
    throw new Undecodable('fieldsV1 that is not JSON');
  }
}

const decodeManagedFieldsEntry = (b: Buffer) =>
  decode(b, managedFieldsEntryFields, (f, m) => {
    if (f.field !== 7) return false;
    for (const raw of fields(f.bytes)) if (raw.field === 1) m.fieldsV1 = json(raw);
    return true;
  });

/** ObjectMeta; as JSON has them, an empty map or list is left out. */
const decodeObjectMeta = (b: Buffer) =>
  decode(b, objectMetaFields, (f, m) => {
    const add = (key: string, value: unknown) => ((m[key] ??= []) as unknown[]).push(value);
    if (f.field === 11 || f.field === 12) {
      const [k, v] = decodeMapEntry(f.bytes);
      ((m[f.field === 11 ? 'labels' : 'annotations'] ??= {}) as Record<string, string>)[k] = v;
    } else if (f.field === 13) add('ownerReferences', decode(f.bytes, ownerReferenceFields));
    else if (f.field === 14) add('finalizers', str(f));
    else if (f.field === 17) add('managedFields', decodeManagedFieldsEntry(f.bytes));
    else return false;
    return true;
  });

/** The envelope's object bytes, checked to be a `kind` of `apiVersion`. */
function payload(body: Buffer, apiVersion: string, kind: string): Buffer {
  if (body.length < magic.length || !body.subarray(0, magic.length).equals(magic))
    throw new Undecodable('no protobuf envelope');
  let raw: Buffer | undefined;
  const type = { apiVersion: '', kind: '' };
  for (const f of fields(body.subarray(magic.length))) {
    if (f.field === 1)
      for (const t of fields(f.bytes))
        if (t.field === 1) type.apiVersion = str(t);
        else if (t.field === 2) type.kind = str(t);
    if (f.field === 2) raw = f.bytes;
    if (f.field === 3 && f.bytes.length) throw new Undecodable('a content encoding');
  }
  if (type.apiVersion !== apiVersion || type.kind !== kind || !raw)
    throw new Undecodable(`not a ${kind}: ${type.apiVersion} ${type.kind}`);
  return raw;
}

/**
 * A protobuf Lease as JSON has it, with the fields not known here kept (`unknownFields`) for
 * `encodeLease` to write back. Throws Undecodable for bytes that are not a Lease.
 */
export function decodeLease(body: Buffer): V1Lease {
  const lease = decode(payload(body, 'coordination.k8s.io/v1', 'Lease'), [], (f, l) => {
    if (f.field === 1) l.metadata = decodeObjectMeta(f.bytes);
    else if (f.field === 2) l.spec = decode(f.bytes, leaseSpecFields);
    else return false;
    return true;
  });
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', spec: {}, ...lease };
}

/** A Status' details: what it names, and the causes (each a reason, message and field). */
function decodeStatusDetails(bytes: Buffer): Json {
  const details: Json = {};
  const causes: Json[] = [];
  for (const f of fields(bytes)) {
    if (f.field === 1) details.name = str(f);
    else if (f.field === 2) details.group = str(f);
    else if (f.field === 3) details.kind = str(f);
    else if (f.field === 4) {
      const cause: Json = {};
      for (const c of fields(f.bytes)) {
        if (c.field === 1) cause.reason = str(c);
        else if (c.field === 2) cause.message = str(c);
        else if (c.field === 3) cause.field = str(c);
      }
      causes.push(cause);
    } else if (f.field === 5) details.retryAfterSeconds = signed(f);
    else if (f.field === 6) details.uid = str(f);
  }
  return causes.length ? { ...details, causes } : details;
}

/**
 * A protobuf Status (a refusal) as the JSON kube-apiserver would have sent, so callers read its
 * reason and code as they do; undefined when the body is not one.
 */
export function decodeStatus(body: Buffer): string | undefined {
  try {
    const status: Json = { kind: 'Status', apiVersion: 'v1' };
    for (const f of fields(payload(body, 'v1', 'Status'))) {
      if (f.field === 2) status.status = str(f);
      else if (f.field === 3) status.message = str(f);
      else if (f.field === 4) status.reason = str(f);
      else if (f.field === 5) status.details = decodeStatusDetails(f.bytes);
      else if (f.field === 6) status.code = signed(f);
    }
    return JSON.stringify(status);
  } catch (error) {
    if (error instanceof Undecodable) return undefined;
    throw error;
  }
}
