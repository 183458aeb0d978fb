#!/usr/bin/env python3
"""safe_fixture.py MODE: a loopback server that speaks Serper's search API (POST /search) and OpenAI's chat
completions (POST /v1/chat/completions) for tests/safe_serper_test.sh, and misbehaves on purpose.

It prints "listening on PORT" and serves until killed; one line per request goes to stderr.
The fake rater answers each SAFE step from its prompt (atomic facts, rewrite, relevance, query, rating)
so the pipeline can end with real labels; a benchmark prompt gets a two-sentence response about Paris.
MODE "faults":
  - every 5th request is a 429 (Retry-After: 0) and every 7th a 500 HTML page: the client's HTTP retries;
  - the first answer to each search query is {"searchParameters":{}} (no "organic"): a malformed answer
    the pipeline must retry and never cache; the second is well formed;
  - a benchmark prompt containing "Berlin Wall" always gets a 200 whose body is not JSON: a
    generation that fails and must still leave a record.
MODE "allfail": every chat completion is a 200 whose body is not JSON (all generations fail).
MODE "clean": no faults.
Counters are written to the file named by SAFE_FIXTURE_STATS (JSON) after each request.
"""
import http.server
import json
import os
import sys
import threading

MODE = sys.argv[1] if len(sys.argv) > 1 else "faults"
lock = threading.Lock()
stats = {"requests": 0, "faults_http": 0, "malformed_search": 0, "bad_chat_body": 0, "searches_ok": 0, "chat_ok": 0}
seen_queries = {}


def last_after(text, tag):
    i = text.rfind(tag)
    if i < 0:
        return ""
    return text[i + len(tag):].split("\n", 1)[0].strip()


def block_after(text, tag):
    i = text.rfind(tag)
    return text[i + len(tag):].strip().split("\n", 1)[0].strip() if i >= 0 else ""


def answer(prompt):
    if "atomic facts: " in prompt:
        sentence = last_after(prompt, "atomic facts: ")
        return "Sure:\n- " + sentence.rstrip(".") + ".\n"
    if "Rewrite the STATEMENT" in prompt:
        return "Already self-contained.\n```\n" + last_after(prompt, "STATEMENT: ") + "\n```"
    if '"Foo"' in prompt:
        return "Both are about the same subject. [Foo]"
    if "ONE Google search query" in prompt:
        return "```\n" + block_after(prompt, "STATEMENT:\n") + "\n```"
    if "[Supported] or" in prompt:
        knowledge = prompt[prompt.rfind("KNOWLEDGE:\n"):prompt.rfind("STATEMENT:\n")]
        return "So [Supported]" if "Paris" in knowledge else "So [Not Supported]"
    return "Paris is the capital of France. The Eiffel Tower stands in Paris."


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fixture: " + (fmt % args) + "\n")

    def send(self, code, body, ctype="application/json", extra=None):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        with lock:
            stats["requests"] += 1
            k = stats["requests"]
        try:
            self.route(k, body)
        finally:
            path = os.environ.get("SAFE_FIXTURE_STATS")
            if path:
                with lock:
                    with open(path + ".tmp", "w") as f:
                        json.dump(stats, f)
                    os.replace(path + ".tmp", path)

    def route(self, k, body):
        if MODE == "faults" and k % 5 == 0:
            with lock:
                stats["faults_http"] += 1
            return self.send(429, '{"error":{"message":"rate limited"}}', extra={"Retry-After": "0"})
        if MODE == "faults" and k % 7 == 0:
            with lock:
                stats["faults_http"] += 1
            return self.send(500, "<html><h1>500 Internal Server Error</h1></html>", "text/html")
        if self.path.endswith("/search"):
            q = str(body.get("q", ""))
            with lock:
                first = q not in seen_queries
                seen_queries[q] = seen_queries.get(q, 0) + 1
                if MODE == "faults" and first:
                    stats["malformed_search"] += 1
                else:
                    stats["searches_ok"] += 1
            if MODE == "faults" and first:
                return self.send(200, '{"searchParameters":{}}')
            snippet = "Paris is the capital and largest city of France." if "Paris" in q else "No match for " + q
            return self.send(200, json.dumps({"searchParameters": {"q": q}, "organic": [{"title": "t", "snippet": snippet}]}))
        if self.path.endswith("/chat/completions"):
            prompt = body["messages"][0]["content"]
            if MODE == "allfail" or (MODE == "faults" and "Berlin Wall" in prompt):
                with lock:
                    stats["bad_chat_body"] += 1
                return self.send(200, "<html>an error page with a 200</html>", "text/html")
            text = answer(prompt)
            with lock:
                stats["chat_ok"] += 1
            return self.send(200, json.dumps({"id": "x", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}}))
        return self.send(404, '{"error":"no such path"}')


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening on %d" % server.server_address[1], flush=True)
server.serve_forever()
