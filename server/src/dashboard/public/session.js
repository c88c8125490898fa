// @ts-check
/**
 * The operator's session: the token (asked for once, kept in this tab's sessionStorage), the login
 * screen, and the `/operators` socket that pushes snapshots. Data flows only with a valid token: it
 * goes in the socket handshake here and as a bearer token on REST actions (api.js).
 */
import { io } from 'socket.io-client';
import { byId } from './dom.js';
import { setLatest } from './latest.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */
/** @typedef {import('../dashboard-state.js').DashboardServerToClientEvents} ServerEvents */
/** @typedef {import('../dashboard-state.js').DashboardClientToServerEvents} ClientEvents */
/** @typedef {import('socket.io-client').Socket<ServerEvents, ClientEvents>} OperatorSocket */

const TOKEN_KEY = 'flock.operatorToken';

/** @type {OperatorSocket | null} */
let socket = null;
/** @type {(state: DashboardState) => void} */
let onState = () => {};

/** The tab's operator token ('' when signed out). */
export function operatorToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

/**
 * Wires the login form and the sign-out button, then connects with the tab's token or asks for one.
 * @param {(state: DashboardState) => void} render called with every pushed snapshot
 */
export function startSession(render) {
  onState = render;
  byId('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('token'));
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = '';
    byId('login-error').textContent = '';
    connect(token);
  });
  byId('logout').addEventListener('click', () => logout());
  const token = operatorToken();
  if (token) connect(token);
  else showLogin();
}

/** @param {string} [message] why the operator is signed out */
export function logout(message = '') {
  socket?.disconnect();
  socket = null;
  setLatest(null);
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(message);
}

/** @param {string} [message] */
function showLogin(message = '') {
  byId('app').hidden = true;
  byId('logout').hidden = true;
  byId('login').hidden = false;
  byId('login-error').textContent = message;
  setConnection('off', 'offline');
  /** @type {HTMLInputElement} */ (byId('token')).focus();
}

/**
 * @param {'on' | 'off' | 'wait'} mode
 * @param {string} text
 */
function setConnection(mode, text) {
  byId('conn').className = `conn conn-${mode}`;
  byId('conn-text').textContent = text;
}

/** @param {string} token */
function connect(token) {
  socket?.disconnect();
  setConnection('wait', 'connecting…');
  /** @type {OperatorSocket} */
  const s = io('/operators', { auth: { token }, transports: ['websocket'] });
  socket = s;
  s.on('connect', () => {
    setConnection('on', 'live');
    byId('login').hidden = true;
    byId('app').hidden = false;
    byId('logout').hidden = false;
  });
  s.on('connect_error', (error) => {
    if (error.message === 'unauthorized') {
      s.disconnect();
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('The coordinator refused this token.');
    } else {
      setConnection('wait', 'reconnecting…');
    }
  });
  s.on('disconnect', () => {
    if (socket === s) setConnection('wait', 'reconnecting…');
  });
  s.on('dashboard:state', (state) => {
    setLatest(state);
    onState(state);
  });
}
