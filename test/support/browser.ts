import { chromium, type Browser } from 'playwright-core';
import { binPath } from './kube.ts';

/** Headless Chromium from bin/, as the management view's tests drive it. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: binPath('chromium'),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-gpu',
    ],
  });
}
