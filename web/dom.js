// A tiny DOM builder. Text is always set with textContent: user text (a greeting, a name) is
// never parsed as HTML. No inline handlers or styles (the page runs under a strict CSP).

// h('p', {class: 'x', id: 'y'}, 'text', child, ...) -> element
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'text') element.textContent = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element) {
  while (element.firstChild) element.firstChild.remove();
  return element;
}

// A labelled form field with the place for its error message under it.
export function field(label, input, hint) {
  const error = h('span', { class: 'field-error', role: 'alert' });
  const wrap = h('label', { class: 'field' }, h('span', { class: 'label' }, label), input, hint ? h('small', { class: 'muted' }, hint) : null, error);
  wrap.showError = (message) => { error.textContent = message || ''; input.toggleAttribute('aria-invalid', !!message); };
  return wrap;
}
