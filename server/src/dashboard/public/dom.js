// @ts-check
/** DOM helpers. Text only: nothing from the server is ever parsed as HTML. */

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node;
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{ className?: string, title?: string }} [props]
 * @param {...(Node | string | number)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.title) node.title = props.title;
  for (const child of children) node.append(typeof child === 'number' ? String(child) : child);
  return node;
}

/**
 * Shows the outcome of an action next to its control.
 * @param {HTMLElement} target
 * @param {string} text
 * @param {'ok' | 'error' | ''} kind
 */
export function flash(target, text, kind) {
  target.textContent = text;
  target.className = `small ${kind}`;
}
