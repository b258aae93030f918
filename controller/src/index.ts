export * from './controller.js';
export * from './events.js';
export * from './expiry.js';
export * from './metrics.js';
export * from './queue.js';
export * from './reconcile.js';
