export * from './app.js';
export * from './auth.js';
export * from './config.js';
export * from './metrics.js';
export * from './server.js';
