export const CONSOLE_HTML = '<!doctype html><title>Slack emulator</title><p>console coming</p>';
