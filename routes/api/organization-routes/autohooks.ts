// Managing the LiteLLM-identity routes needs an admin key, like managing the organizations themselves.
export { default } from '../organizations/autohooks.js'
