export * from './decide.js';
export * from './errors.js';
export * from './memory-store.js';
export * from './model.js';
export * from './service.js';
export * from './store.js';
export * from './transitions.js';
export * from './history.js';
