/**
 * The part of highlight.js's browser build (@highlightjs/cdn-assets, served as /assets/highlight.min.js
 * through the page's import map) that rich-text.ts uses. That package ships no type declarations.
 */
declare module "@highlightjs/cdn-assets/es/highlight.min.js" {
  interface HighlightResult {
    /** HTML: the code's text, escaped, inside `<span class="hljs-...">` elements. */
    value: string;
  }
  interface HighlightJs {
    highlight(code: string, options: { language: string; ignoreIllegals?: boolean }): HighlightResult;
    getLanguage(name: string): object | undefined;
  }
  const hljs: HighlightJs;
  export default hljs;
}
