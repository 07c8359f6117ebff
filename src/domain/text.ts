// The format of every text Ferry says, whatever the chat: mrkdwn-like
// (*bold*, `code`, <@user> mentions), in which a literal &, < or > is written
// &amp;, &lt;, &gt; — the escaping Slack mrkdwn and HTML share. Slack reads
// `<!channel>` as "notify everyone" and `<https://x|text>` as a link whose
// text hides where it goes, so text that does not come from Ferry itself can
// never be put into a message as it is.
//
// Decision: user text is escaped where it is put into a message, through
// `literal` (or `echo` for a word quoted back), and nowhere else. The domain
// stays chat-neutral — the format is the same for every adapter — and the one
// function is easy to look for. What is escaped: reasons, grep patterns, pod
// and file names, versions and every word echoed in an error, usage lines
// (`<app>`), error texts from other systems. Snippets and attached files are
// raw text by contract (ports.ts): the chat adapter escapes a snippet where it
// puts it in a code block (render.ts codeBlock). A terminal shows the text
// after `plainText`.

/**
 * A person, named in a text by their chat id: `<@id>`, Ferry's one mention
 * token. Each chat adapter turns it into its own mention (a Slack mention as
 * it is, a Matrix pill, the person's name in a terminal), so the domain names
 * actors by id and never by a platform's markup.
 */
export function mention(userId: string): string {
  return `<@${literal(userId)}>`;
}

/** Text that is not Ferry's own, made safe to put into a message: &, < and > escaped. */
export function literal(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The longest piece of a person's word Ferry quotes back. */
export const ECHO_MAX = 60;

/**
 * A word the person typed, quoted back in an answer: escaped, and cut so that a
 * word of 10,000 characters cannot fill the answer. Never empty between the quotes.
 */
export function echo(word: string, max = ECHO_MAX): string {
  let w = word;
  if (w.length > max) {
    w = w.slice(0, max - 1);
    // Do not leave half a surrogate pair.
    const last = w.charCodeAt(w.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) w = w.slice(0, -1);
    w = `${w}…`;
  }
  return `"${literal(w)}"`;
}

/** Ferry's text for a terminal (the CLI): the escapes turned back into the characters. */
export function plainText(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
