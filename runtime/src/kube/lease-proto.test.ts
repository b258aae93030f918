import type { V1Lease } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { toLease } from './lease-codec.js';
import {
  decodeLease,
  decodeStatus,
  encodeLease,
  protobuf,
  Undecodable,
  unknownFields,
} from './lease-proto.js';

/** A Lease with every field the codec knows, as kube-apiserver's JSON has it. */
const full: V1Lease = {
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: {
    name: 'retrospective',
    generateName: 'retro-',
    namespace: 'team-a',
    selfLink: '/x',
    uid: '00d25eb8-baa8-45a1-9b17-b6b1df27c548',
    resourceVersion: '675',
    generation: 3,
    creationTimestamp: '2026-12-03T13:05:01Z' as unknown as Date,
    deletionTimestamp: '2026-12-03T14:00:00Z' as unknown as Date,
    deletionGracePeriodSeconds: 0,
    labels: { 'retrospective.dev/lock': 'true', é: '€' },
    annotations: { 'retrospective.dev/queue': '[{"id":"a","user":"😀"}]', empty: '' },
    ownerReferences: [
      {
        apiVersion: 'retrospective.dev/v1alpha1',
        kind: 'Lock',
        name: 'retrospective',
        uid: 'f00',
        controller: true,
        blockOwnerDeletion: false,
      },
    ],
    finalizers: ['a/b', 'c/d'],
    managedFields: [
      {
        manager: 'kubectl',
        operation: 'Update',
        apiVersion: 'coordination.k8s.io/v1',
        time: '2026-12-03T13:05:01Z' as unknown as Date,
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:spec': { 'f:holderIdentity': {} } },
      },
    ],
  },
  spec: {
    holderIdentity: 'ana',
    leaseDurationSeconds: 30,
    acquireTime: '2026-12-03T13:05:04.959123Z' as unknown as Date,
    renewTime: '2026-12-03T13:05:04.000001Z' as unknown as Date,
    leaseTransitions: 453,
    strategy: 'OldestEmulationVersion',
    preferredHolder: 'bob',
  },
};

const roundTrip = (lease: V1Lease) => {
  const bytes = encodeLease(lease);
  if (!bytes) throw new Error('not encoded');
  return decodeLease(bytes);
};

describe('the Lease in protobuf', () => {
  it('decodes what it encodes as the JSON of the same Lease, every field and character', () => {
    expect(roundTrip(full)).toEqual(full);
  });

  it('encodes the times a replica writes (Dates, MicroTimes) as the JSON path sends them', () => {
    const written = toLease(
      {
        name: 'retrospective',
        holder: 'ana',
        acquiredAt: new Date('2026-12-03T13:05:04.959Z'),
        renewedAt: new Date('2026-12-03T13:05:05.000Z'),
        token: 7,
        content: '',
      },
      '675',
      full,
    );
    expect(roundTrip(written).spec).toEqual({
      holderIdentity: 'ana',
      acquireTime: '2026-12-03T13:05:04.959000Z',
      renewTime: '2026-12-03T13:05:05.000000Z',
      leaseTransitions: 7,
      // Not the lock's: kept from the Lease the write was built on.
      strategy: 'OldestEmulationVersion',
      preferredHolder: 'bob',
    });
    // The reset of managedFields: one empty entry, as `[{}]` is in JSON.
    expect(roundTrip(written).metadata?.managedFields).toEqual([{}]);
  });

  it('keeps the fields it does not know, and writes them back through a replace', () => {
    const bytes = encodeLease(full);
    if (!bytes) throw new Error('not encoded');
    // A field 99 (a string) in ObjectMeta, as a later Kubernetes might add: Lease field 1 is the
    // metadata, inside the envelope's field 2.
    const extra = Buffer.from([0x9a, 0x06, 0x03, 0x6e, 0x65, 0x77]); // field 99, "new"
    const decoded = decodeLease(bytes);
    const meta = decoded.metadata as Record<symbol, unknown>;
    expect(meta[unknownFields]).toBeUndefined();
    meta[unknownFields] = extra;
    // The same in the spec (field 99 of LeaseSpec).
    (decoded.spec as Record<symbol, unknown>)[unknownFields] = extra;
    // A replica's next write is built on what it read: the field goes along, as it came.
    const next = toLease({ name: 'retrospective', token: 8, content: '' }, '676', decoded);
    const again = roundTrip(next);
    expect((again.metadata as Record<symbol, unknown>)[unknownFields]).toEqual(extra);
    expect((again.spec as Record<symbol, unknown>)[unknownFields]).toEqual(extra);
    // The lock's own fields are its state's: released, no holder, no times, no duration.
    expect(JSON.parse(JSON.stringify(again.spec))).toEqual({
      leaseTransitions: 8,
      strategy: 'OldestEmulationVersion',
      preferredHolder: 'bob',
    });
    expect(decodeLease(encodeLease(next)!).metadata?.name).toBe('retrospective');
  });

  it('leaves to JSON a Lease with a key it does not know (one the watch brought, from a later Kubernetes)', () => {
    expect(encodeLease({ ...full, metadata: { ...full.metadata, brandNew: 1 } as never })).toBe(
      undefined,
    );
    expect(encodeLease({ ...full, status: {} } as never)).toBeUndefined();
    // An int32 out of range (Kubernetes would wrap it, JSON refuses it): JSON, and its refusal.
    expect(encodeLease({ ...full, spec: { ...full.spec, leaseTransitions: 2 ** 31 } })).toBe(
      undefined,
    );
  });

  it('decodes negative numbers and times before 1970 exactly (ten-byte varints)', () => {
    const old = {
      ...full,
      metadata: { ...full.metadata, generation: undefined, deletionGracePeriodSeconds: undefined },
      spec: { acquireTime: '1969-12-31T23:58:20.000001Z' as unknown as Date },
    };
    const bytes = encodeLease(old)!;
    expect(decodeLease(bytes).spec).toEqual(old.spec);
  });

  it('refuses bytes that are not a Lease', () => {
    const bytes = encodeLease(full)!;
    expect(() => decodeLease(bytes.subarray(4))).toThrow(Undecodable);
    expect(() => decodeLease(bytes.subarray(0, bytes.length - 3))).toThrow(Undecodable);
    const status = Buffer.from(bytes);
    status.write('v1\u0012\u0006Status', 8); // no longer the type the envelope says
    expect(() => decodeLease(status)).toThrow(Undecodable);
  });

  it('reads a refusal (a protobuf Status) as the JSON Status kube-apiserver would send', () => {
    const field = (n: number, s: string) => [n * 8 + 2, Buffer.byteLength(s), ...Buffer.from(s)];
    const typeMeta = [...field(1, 'v1'), ...field(2, 'Status')];
    const status = [
      ...field(2, 'Failure'),
      ...field(3, 'the object has been modified'),
      ...field(4, 'Conflict'),
      6 * 8,
      0x99,
      0x03,
    ];
    const body = Buffer.from([
      0x6b,
      0x38,
      0x73,
      0x00,
      0x0a,
      typeMeta.length,
      ...typeMeta,
      0x12,
      status.length,
      ...status,
    ]);
    expect(JSON.parse(decodeStatus(body)!)).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      message: 'the object has been modified',
      reason: 'Conflict',
      code: 409,
    });
    expect(decodeStatus(Buffer.from('{"kind":"Status"}'))).toBeUndefined();

    // A 422's details: the fields its causes name (what tells a Lease too large from invalid).
    const varint = (n: number): number[] =>
      n < 128 ? [n] : [(n & 0x7f) | 0x80, ...varint(n >> 7)];
    const nested = (n: number, bytes: number[]) => [n * 8 + 2, ...varint(bytes.length), ...bytes];
    const cause = (reason: string, fieldName: string) =>
      nested(4, [...field(1, reason), ...field(2, 'Too long'), ...field(3, fieldName)]);
    const details = [
      ...field(1, 'retrospective'),
      ...field(2, 'coordination.k8s.io'),
      ...field(3, 'leases'),
      ...cause('FieldValueTooLong', 'metadata.annotations'),
      ...cause('FieldValueInvalid', 'spec.leaseTransitions'),
    ];
    const invalid = [...field(4, 'Invalid'), ...nested(5, details), 6 * 8, 0xa6, 0x03];
    const refusal = Buffer.from([
      0x6b,
      0x38,
      0x73,
      0x00,
      0x0a,
      typeMeta.length,
      ...typeMeta,
      ...nested(2, invalid),
    ]);
    expect(JSON.parse(decodeStatus(refusal)!)).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      reason: 'Invalid',
      code: 422,
      details: {
        name: 'retrospective',
        group: 'coordination.k8s.io',
        kind: 'leases',
        causes: [
          { reason: 'FieldValueTooLong', message: 'Too long', field: 'metadata.annotations' },
          { reason: 'FieldValueInvalid', message: 'Too long', field: 'spec.leaseTransitions' },
        ],
      },
    });
    expect(protobuf).toBe('application/vnd.kubernetes.protobuf');
  });
});
