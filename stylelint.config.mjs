// stylelint: the console's stylesheet (console/console.css), `npm run lint:css`. The
// recommended rules (mistakes, not taste), without no-descending-specificity: it compares
// selectors whatever they set, and the stylesheet is ordered by component (a table's
// smaller buttons after the buttons' states), never counting on order between rules that
// set the same property.
export default {
  extends: ["stylelint-config-recommended"],
  rules: { "no-descending-specificity": null },
};
