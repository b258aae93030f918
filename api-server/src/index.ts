export * from './app.js';
export * from './auth/authorizer.js';
export * from './config.js';
export * from './metrics.js';
export * from './server.js';
