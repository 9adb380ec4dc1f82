/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "keepalived-parse.h"

enum token_type {
        TOKEN_WORD,
        TOKEN_NEWLINE,
        TOKEN_OPEN,
        TOKEN_CLOSE,
        TOKEN_END,
};

struct token {
        enum token_type type;
        int line;
        char *word;                     /* TOKEN_WORD: owned until moved into a statement */
};

struct lexer {
        struct token *tokens;
        size_t n, allocated;
        size_t pos;                     /* parser's cursor */
        int error_line;
        const char *error;
};

static int push_token(struct lexer *x, enum token_type type, int line, char *word) {
        if (x->n == x->allocated) {
                size_t m = x->allocated ? x->allocated * 2 : 64;
                struct token *t = reallocarray(x->tokens, m, sizeof(*t));

                if (!t)
                        return -ENOMEM;
                x->tokens = t;
                x->allocated = m;
        }
        x->tokens[x->n++] = (struct token) { .type = type, .line = line, .word = word };
        return 0;
}

static int syntax_error(struct lexer *x, int line, const char *reason) {
        x->error_line = line;
        x->error = reason;
        return -EBADMSG;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* A word ends at a blank, a brace, a newline or a quote; a quoted part
 * joins the word it touches ("a"b is one word, ab), as in a shell. A
 * comment starts only where a word could start, so a#b stays one word. */
static int tokenize(struct lexer *x, const char *buf, size_t len) {
        int line = 1, r;
        size_t i = 0;

        while (i < len) {
                char c = buf[i];
                size_t cap = 0, n = 0;
                int start_line = line;
                char *w;

                if (c == '\0')
                        return syntax_error(x, line, "NUL byte");
                if (is_blank(c)) {
                        i++;
                        continue;
                }
                if (c == '\n') {
                        r = push_token(x, TOKEN_NEWLINE, line++, NULL);
                        if (r < 0)
                                return r;
                        i++;
                        continue;
                }
                if (c == '#' || c == '!') {
                        while (i < len && buf[i] != '\n')
                                i++;
                        continue;
                }
                if (c == '{' || c == '}') {
                        r = push_token(x, c == '{' ? TOKEN_OPEN : TOKEN_CLOSE, line, NULL);
                        if (r < 0)
                                return r;
                        i++;
                        continue;
                }

                /* First find where the word ends and how long it is
                 * without its quotes, then copy it. */
                {
                        size_t j = i;
                        bool quoted = false;

                        for (; j < len; j++) {
                                c = buf[j];
                                if (c == '\0')
                                        return syntax_error(x, line, "NUL byte");
                                if (quoted) {
                                        if (c == '\n')
                                                break;
                                        if (c == '"')
                                                quoted = false;
                                        else
                                                cap++;
                                        continue;
                                }
                                if (is_blank(c) || c == '\n' || c == '{' || c == '}')
                                        break;
                                if (c == '"')
                                        quoted = true;
                                else
                                        cap++;
                        }
                        if (quoted)
                                return syntax_error(x, start_line, "unterminated quoted string");
                }
                w = malloc(cap + 1);
                if (!w)
                        return -ENOMEM;
                while (i < len) {
                        c = buf[i];
                        if (is_blank(c) || c == '\n' || c == '{' || c == '}')
                                break;
                        if (c == '"') {
                                for (i++; buf[i] != '"'; i++)
                                        w[n++] = buf[i];
                                i++;
                                continue;
                        }
                        w[n++] = c;
                        i++;
                }
                w[n] = '\0';
                r = push_token(x, TOKEN_WORD, start_line, w);
                if (r < 0) {
                        free(w);
                        return r;
                }
        }
        return push_token(x, TOKEN_END, line, NULL);
}

static void stmt_done(struct kconf_stmt *s) {
        for (size_t i = 0; i < s->n_words; i++)
                free(s->words[i]);
        free(s->words);
        for (size_t i = 0; i < s->n_children; i++)
                stmt_done(&s->children[i]);
        free(s->children);
}

struct kconf_stmt *kconf_free(struct kconf_stmt *root) {
        if (!root)
                return NULL;
        stmt_done(root);
        free(root);
        return NULL;
}

/* Grows geometrically: a file is mostly one long list at the top. */
static struct kconf_stmt *add_child(struct kconf_stmt *parent) {
        struct kconf_stmt *c;

        if (parent->n_children == parent->allocated) {
                size_t m = parent->allocated ? parent->allocated * 2 : 8;

                c = reallocarray(parent->children, m, sizeof(*c));
                if (!c)
                        return NULL;
                parent->children = c;
                parent->allocated = m;
        }
        c = &parent->children[parent->n_children++];
        *c = (struct kconf_stmt) {};
        return c;
}

static int add_word(struct kconf_stmt *s, struct token *t) {
        char **w = reallocarray(s->words, s->n_words + 1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        s->words = w;
        w[s->n_words++] = t->word;
        t->word = NULL;
        return 0;
}

/* Statements of PARENT up to its closing brace (or the end, for the root). */
static int parse_block(struct lexer *x, struct kconf_stmt *parent, unsigned depth, int open_line) {
        struct kconf_stmt *last = NULL;        /* may still take a block opened on the next line */
        int r;

        if (depth > KCONF_MAX_DEPTH)
                return syntax_error(x, open_line, "blocks nested too deep");
        for (;;) {
                struct token *t = &x->tokens[x->pos];
                struct kconf_stmt *s;

                switch (t->type) {
                case TOKEN_NEWLINE:
                        x->pos++;
                        continue;
                case TOKEN_END:
                        if (depth > 0)
                                return syntax_error(x, open_line, "block not closed: missing '}'");
                        return 0;
                case TOKEN_CLOSE:
                        if (depth == 0)
                                return syntax_error(x, t->line, "'}' without a block to close");
                        x->pos++;
                        return 0;
                case TOKEN_OPEN:
                        /* "name\n{": the brace on a line of its own. */
                        if (!last || last->has_block)
                                return syntax_error(x, t->line, "'{' without a name before it");
                        x->pos++;
                        last->has_block = true;
                        r = parse_block(x, last, depth + 1, t->line);
                        if (r < 0)
                                return r;
                        last = NULL;
                        continue;
                case TOKEN_WORD:
                        break;
                }

                s = add_child(parent);
                if (!s)
                        return -ENOMEM;
                s->line = t->line;
                while (x->tokens[x->pos].type == TOKEN_WORD) {
                        r = add_word(s, &x->tokens[x->pos]);
                        if (r < 0)
                                return r;
                        x->pos++;
                }
                last = s;
                if (x->tokens[x->pos].type == TOKEN_OPEN) {
                        int line = x->tokens[x->pos].line;

                        x->pos++;
                        s->has_block = true;
                        r = parse_block(x, s, depth + 1, line);
                        if (r < 0)
                                return r;
                        last = NULL;
                }
        }
}

int kconf_parse(const char *buf, size_t len, struct kconf_stmt **ret, int *ret_line, const char **ret_reason) {
        struct lexer x = {};
        struct kconf_stmt *root;
        int r;

        root = calloc(1, sizeof(*root));
        if (!root)
                return -ENOMEM;
        if (!buf && len > 0) {
                r = syntax_error(&x, 0, "no input");
                goto cleanup;
        }
        r = tokenize(&x, buf ? buf : "", len);
        if (r < 0)
                goto cleanup;
        r = parse_block(&x, root, 0, 0);

cleanup:
        for (size_t i = 0; i < x.n; i++)
                free(x.tokens[i].word);
        free(x.tokens);
        if (r < 0) {
                kconf_free(root);
                if (r == -EBADMSG) {
                        if (ret_line)
                                *ret_line = x.error_line;
                        if (ret_reason)
                                *ret_reason = x.error;
                }
                return r;
        }
        *ret = root;
        return 0;
}
