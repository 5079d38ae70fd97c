// ESLint, flat config: the console's script (console/console.js, a classic script the
// browser runs) and the lint configurations. `npm run lint:js` runs it, then tsc on tsconfig.json (the
// types, from the script's JSDoc). Besides eslint's recommended rules, the console's
// promises as rules: credentials never stored, server text never parsed as HTML, no code
// built from strings, no inline style (the page's policy has no 'unsafe-inline').
import js from "@eslint/js";
import globals from "globals";

const never = (what, why) => ({ selector: what, message: why });

export default [
  {
    files: ["console/**/*.js"],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2022, sourceType: "script", globals: globals.browser },
    rules: {
      ...js.configs.recommended.rules,
      strict: ["error", "global"],
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-implicit-globals": "error",
      "no-shadow": "error",
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-restricted-globals": [
        "error",
        ...["localStorage", "sessionStorage", "indexedDB"].map((name) => ({
          name,
          message: "Credentials live in the page's memory only: no browser storage.",
        })),
      ],
      "no-restricted-syntax": [
        "error",
        never("MemberExpression[property.name=/^(innerHTML|outerHTML)$/]", "Server text goes in as textContent, never as HTML."),
        never("CallExpression[callee.property.name='insertAdjacentHTML']", "Server text goes in as textContent, never as HTML."),
        never("MemberExpression[object.name='document'][property.name=/^(cookie|write|writeln)$/]", "No cookies, no document.write."),
        never("MemberExpression[object.name=/^(window|self|globalThis)$/][property.name=/^(localStorage|sessionStorage|indexedDB)$/]", "Credentials live in the page's memory only: no browser storage."),
        never("MemberExpression[property.name='style']", "No inline style: the policy allows the stylesheet only (toggle a class)."),
        never("CallExpression[callee.property.name='setAttribute'][arguments.0.value='style']", "No inline style: the policy allows the stylesheet only (toggle a class)."),
      ],
    },
  },
  {
    files: ["eslint.config.mjs", "stylelint.config.mjs"],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.node },
  },
];
