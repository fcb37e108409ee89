// owclient-go drives a pywhisk (or any OpenWhisk) API host with the official Go client
// library, github.com/apache/openwhisk-client-go/whisk: the code that the `wsk` CLI is
// built on, which sends wsk's requests and parses the answers. It runs the scenario a
// wsk user would (info, namespaces, create/update/get/list/invoke/delete an action,
// activations list/get/logs/result, the 401/404/409 errors) and prints one JSON line per
// step on stdout. It exits 1 at the first unexpected outcome, 2 on bad usage.
//
// Besides what the library itself checks, every successful body is decoded strictly into
// the library's own structs, because client-go ignores decode errors silently (a field of
// the wrong JSON type would only show up later as a missing value in wsk's output).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/apache/openwhisk-client-go/whisk"
)

var (
	apihost     = flag.String("apihost", "", "API host with scheme, e.g. http://127.0.0.1:3233")
	auth        = flag.String("auth", "", "uuid:key")
	wasmPath    = flag.String("wasm", "", "path to hello.wasm")
	apperrPath  = flag.String("apperror-wasm", "", "optional: path to apperror.wasm, to check application errors")
	actionName  = flag.String("name", "", "action name (default: owclient-go-<random>)")
	pollTimeout = flag.Duration("poll-timeout", 60*time.Second, "how long to wait for a non-blocking activation")
	scenario    = flag.String("scenario", "actions", "actions (this file), model (model.go: packages, bindings, sequences, web actions) or events (events.go: triggers, rules, feeds)")
)

// step is one line of output.
type step map[string]interface{}

func emit(s step) {
	line, err := json.Marshal(s)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"step":"emit","ok":false,"error":%q}`, err.Error()))
	}
	fmt.Println(string(line))
}

func pass(name string, s step) {
	if s == nil {
		s = step{}
	}
	s["step"] = name
	s["ok"] = true
	emit(s)
}

// fail reports the step as failed and ends the program.
func fail(name string, resp *http.Response, err error, format string, args ...interface{}) {
	s := step{"step": name, "ok": false, "error": fmt.Sprintf(format, args...)}
	if err != nil {
		s["client_error"] = err.Error()
		s["client_error_type"] = fmt.Sprintf("%T", err)
		if werr, ok := err.(*whisk.WskError); ok {
			s["exit_code"] = werr.ExitCode
			s["root_error_type"] = fmt.Sprintf("%T", werr.RootErr)
		}
	}
	addResp(s, resp)
	emit(s)
	os.Exit(1)
}

func addResp(s step, resp *http.Response) {
	if resp == nil {
		return
	}
	s["status"] = resp.StatusCode
	s["request"] = resp.Request.Method + " " + resp.Request.URL.RequestURI()
	if body := rawBody(resp); len(body) > 0 {
		if len(body) > 2000 {
			body = append(body[:2000], []byte("...")...)
		}
		s["body"] = string(body)
	}
}

// rawBody is the response body that client-go read and put back on resp.Body.
func rawBody(resp *http.Response) []byte {
	if resp == nil || resp.Body == nil {
		return nil
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewBuffer(data))
	return data
}

// strict decodes the body into v (a pointer to a client-go type) and fails the step on
// a type mismatch, which client-go itself would swallow.
func strict(name string, resp *http.Response, v interface{}) {
	data := rawBody(resp)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		fail(name, resp, nil, "body does not decode into client-go's %s (client-go ignores this silently): %v",
			reflect.TypeOf(v).Elem(), err)
	}
}

// expectStatus fails the step unless the call succeeded with one of the given statuses.
func expectOK(name string, resp *http.Response, err error, statuses ...int) {
	if err != nil {
		fail(name, resp, err, "unexpected error")
	}
	if resp == nil {
		fail(name, resp, nil, "no HTTP response")
	}
	for _, st := range statuses {
		if resp.StatusCode == st {
			return
		}
	}
	fail(name, resp, nil, "unexpected HTTP status %d (want %v)", resp.StatusCode, statuses)
}

// expectAPIError checks that err is what client-go makes of an OpenWhisk error body,
// {"error": "...", "code": ...} with the given HTTP status: a *WskError whose RootErr is a
// *ErrorResponse and whose ExitCode is status-256 (what wsk exits with).
func expectAPIError(name string, resp *http.Response, err error, status int) step {
	if err == nil {
		fail(name, resp, nil, "expected an HTTP %d error, got success", status)
	}
	werr, ok := err.(*whisk.WskError)
	if !ok {
		fail(name, resp, err, "expected a *whisk.WskError")
	}
	if resp == nil || resp.StatusCode != status {
		fail(name, resp, err, "expected HTTP %d", status)
	}
	if werr.ExitCode != status-256 {
		fail(name, resp, err, "expected wsk exit code %d", status-256)
	}
	eresp, ok := werr.RootErr.(*whisk.ErrorResponse)
	if !ok {
		fail(name, resp, err, "client-go did not recognise an OpenWhisk error body ({\"error\":..., \"code\":...})")
	}
	return step{
		"status":        resp.StatusCode,
		"exit_code":     werr.ExitCode,
		"error_message": fmt.Sprintf("%v", *eresp.ErrMsg),
		"error_code":    fmt.Sprintf("%v", *eresp.Code),
		"wsk_message":   werr.Error(),
	}
}

// summary calls a wsk table formatter, catching the panic it raises on an odd annotation.
func summary(name string, resp *http.Response, f func() string) string {
	var out string
	func() {
		defer func() {
			if r := recover(); r != nil {
				fail(name, resp, nil, "wsk's list formatter panicked: %v", r)
			}
		}()
		out = f()
	}()
	return strings.TrimSpace(out)
}

func annotationKeys(kv whisk.KeyValueArr) []string {
	keys := []string{}
	for _, a := range kv {
		keys = append(keys, a.Key)
	}
	return keys
}

func resultOf(r *whisk.Response) map[string]interface{} {
	if r == nil || r.Result == nil {
		return nil
	}
	return map[string]interface{}(*r.Result)
}

func wantGreeting(name string, resp *http.Response, result map[string]interface{}) {
	if g, _ := result["greeting"].(string); g != "Hello, Ada!" || len(result) != 1 {
		fail(name, resp, nil, "result %v, want {\"greeting\":\"Hello, Ada!\"}", result)
	}
}

func newClient(host, token string) *whisk.Client {
	// What wsk does with --apihost/--auth (-i): Config.Host is used by NewClient to build
	// BaseURL = <host>/api; a host without a scheme would become https://<host>/api.
	client, err := whisk.NewClient(&http.Client{Timeout: 90 * time.Second}, &whisk.Config{
		Host:      host,
		AuthToken: token,
		Namespace: "_",
		Insecure:  true,
		UserAgent: "OpenWhisk-CLI/1.0 (pywhisk client test)",
	})
	if err != nil {
		fail("client", nil, err, "whisk.NewClient failed")
	}
	return client
}

func main() {
	flag.Parse()
	if *scenario == "model" {
		model()
		return
	}
	if *scenario == "events" {
		events()
		return
	}
	if *apihost == "" || *auth == "" || *wasmPath == "" {
		fmt.Fprintln(os.Stderr, "usage: owclient-go --apihost http://HOST:PORT --auth UUID:KEY --wasm hello.wasm [--apperror-wasm apperror.wasm] [--name NAME]")
		os.Exit(2)
	}
	name := *actionName
	if name == "" {
		name = fmt.Sprintf("owclient-go-%06x", rand.New(rand.NewSource(time.Now().UnixNano())).Intn(1<<24))
	}
	wasm, err := os.ReadFile(*wasmPath)
	if err != nil {
		fail("setup", nil, err, "cannot read --wasm")
	}
	code := base64.StdEncoding.EncodeToString(wasm)
	started := time.Now()

	client := newClient(*apihost, *auth)
	pass("client", step{"base_url": client.BaseURL.String(), "action": name})

	// GET /api/v1 (wsk property get --apibuild, no auth)
	info, resp, err := client.Info.Get()
	expectOK("info", resp, err, http.StatusOK)
	strict("info", resp, &whisk.Info{})
	pass("info", step{"status": resp.StatusCode, "build": info.Build, "buildno": info.BuildNo})

	// GET /api/v1/namespaces (wsk namespace list)
	namespaces, resp, err := client.Namespaces.List()
	client.Config.Namespace = "_" // List() clears it: wsk runs one command per process
	expectOK("namespaces", resp, err, http.StatusOK)
	strict("namespaces", resp, &[]string{})
	if len(namespaces) == 0 {
		fail("namespaces", resp, nil, "no namespace listed")
	}
	pass("namespaces", step{"status": resp.StatusCode, "namespaces": namespaces})

	// Wrong key (wsk with a bad --auth): 401 with an OpenWhisk error body.
	_, resp, err = newClient(*apihost, strings.SplitN(*auth, ":", 2)[0]+":not-the-key").Actions.List("", &whisk.ActionListOptions{Limit: 30})
	pass("bad-auth", expectAPIError("bad-auth", resp, err, http.StatusUnauthorized))

	// PUT /namespaces/_/actions/NAME?overwrite=false (wsk action create NAME hello.wasm --kind wasm:wasi)
	newAction := func(b64 string) *whisk.Action {
		c := b64
		return &whisk.Action{Name: name, Namespace: "_", Exec: &whisk.Exec{Kind: "wasm:wasi", Code: &c}}
	}
	created, resp, err := client.Actions.Insert(newAction(code), false)
	expectOK("create", resp, err, http.StatusOK)
	strict("create", resp, &whisk.Action{})
	if created.Name != name || created.Exec == nil || created.Exec.Kind != "wasm:wasi" {
		fail("create", resp, nil, "created action has name %q, exec %+v", created.Name, created.Exec)
	}
	pass("create", step{"status": resp.StatusCode, "name": created.Name, "namespace": created.Namespace,
		"version": created.Version, "kind": created.Exec.Kind, "annotations": annotationKeys(created.Annotations)})

	// Same again without overwrite: 409 (wsk: "resource already exists").
	_, resp, err = client.Actions.Insert(newAction(code), false)
	pass("create-conflict", expectAPIError("create-conflict", resp, err, http.StatusConflict))

	// wsk action update: PUT ?overwrite=true bumps the version.
	updated, resp, err := client.Actions.Insert(newAction(code), true)
	expectOK("update", resp, err, http.StatusOK)
	strict("update", resp, &whisk.Action{})
	if updated.Version == created.Version || updated.Version == "" {
		fail("update", resp, nil, "version %q after update, was %q", updated.Version, created.Version)
	}
	pass("update", step{"status": resp.StatusCode, "version": updated.Version, "previous_version": created.Version})

	// wsk action get NAME: GET ?code=false
	got, resp, err := client.Actions.Get(name, false)
	expectOK("get", resp, err, http.StatusOK)
	strict("get", resp, &whisk.Action{})
	if got.Name != name || got.Version != updated.Version || got.Exec == nil || got.Exec.Kind != "wasm:wasi" {
		fail("get", resp, nil, "got name %q version %q exec %+v", got.Name, got.Version, got.Exec)
	}
	hasCode := got.Exec.Code != nil && *got.Exec.Code != ""
	if hasCode {
		fail("get", resp, nil, "code=false but the code came back")
	}
	limits := step{}
	if got.Limits != nil {
		for k, p := range map[string]*int{"timeout": got.Limits.Timeout, "memory": got.Limits.Memory, "logs": got.Limits.Logsize, "concurrency": got.Limits.Concurrency} {
			if p != nil {
				limits[k] = *p
			}
		}
	}
	pass("get", step{"status": resp.StatusCode, "version": got.Version, "kind": got.Exec.Kind,
		"code_returned": hasCode, "limits": limits, "annotations": annotationKeys(got.Annotations), "namespace": got.Namespace})

	// wsk action list: GET actions?limit=30&skip=0
	actions, resp, err := client.Actions.List("", &whisk.ActionListOptions{Limit: 30})
	expectOK("list", resp, err, http.StatusOK)
	strict("list", resp, &[]whisk.Action{})
	found := ""
	for _, a := range actions {
		if a.Name == name {
			found = summary("list", resp, a.ToSummaryRowString)
		}
	}
	if found == "" {
		fail("list", resp, nil, "action %s not in the list of %d", name, len(actions))
	}
	pass("list", step{"status": resp.StatusCode, "count": len(actions), "row": found})

	params := map[string]interface{}{"name": "Ada"}

	// wsk action invoke NAME -p name Ada --result: POST ?blocking=true&result=true
	res, resp, err := client.Actions.Invoke(name, params, true, true)
	expectOK("invoke-result", resp, err, http.StatusOK)
	wantGreeting("invoke-result", resp, res)
	pass("invoke-result", step{"status": resp.StatusCode, "result": res})

	// wsk action invoke NAME -p name Ada --blocking: the whole activation.
	res, resp, err = client.Actions.Invoke(name, params, true, false)
	expectOK("invoke-blocking", resp, err, http.StatusOK)
	var act whisk.Activation
	strict("invoke-blocking", resp, &act)
	if act.ActivationID == "" || act.Name != name || !act.Response.Success || act.Response.Status != "success" {
		fail("invoke-blocking", resp, nil, "activation %s name %q response %+v", act.ActivationID, act.Name, act.Response)
	}
	wantGreeting("invoke-blocking", resp, resultOf(&act.Response))
	if _, ok := act.Annotations.GetValue("waitTime").(json.Number); !ok {
		fail("invoke-blocking", resp, nil, "no numeric waitTime annotation: %v", act.Annotations)
	}
	if act.Start <= 0 || act.End < act.Start {
		fail("invoke-blocking", resp, nil, "start %d end %d", act.Start, act.End)
	}
	id := act.ActivationID
	pass("invoke-blocking", step{"status": resp.StatusCode, "activation_id": id, "response_status": act.Response.Status,
		"success": act.Response.Success, "duration": act.Duration, "logs": act.Logs, "annotations": annotationKeys(act.Annotations),
		"version": act.Version, "namespace": act.Namespace, "subject": act.Subject})

	// wsk activation get ID
	got2, resp, err := client.Activations.Get(id)
	expectOK("activation-get", resp, err, http.StatusOK)
	strict("activation-get", resp, &whisk.Activation{})
	if got2.ActivationID != id || got2.Name != name || got2.StatusCode != 0 || !got2.Response.Success {
		fail("activation-get", resp, nil, "activation %+v", got2)
	}
	wantGreeting("activation-get", resp, resultOf(&got2.Response))
	pass("activation-get", step{"status": resp.StatusCode, "activation_id": got2.ActivationID, "logs": len(got2.Logs)})

	// wsk activation list NAME --limit 5 --full: GET activations?docs=true&limit=5&name=NAME&skip=0
	acts, resp, err := client.Activations.List(&whisk.ActivationListOptions{Name: name, Limit: 5, Docs: true})
	expectOK("activation-list", resp, err, http.StatusOK)
	strict("activation-list", resp, &[]whisk.Activation{})
	var row string
	ids := []string{}
	for _, a := range acts {
		ids = append(ids, a.ActivationID)
		if a.Name != name {
			fail("activation-list", resp, nil, "filtered by name %s but got %q", name, a.Name)
		}
		if a.ActivationID == id {
			a := a
			row = summary("activation-list", resp, (whisk.ActivationFilteredRow{Row: a, HeaderFmt: "%-19s %-32s %-6s %-5s %-10s %-17s %-s\n",
				RowFmt: "%d-%02d-%02d %02d:%02d:%02d %-32s %-6s %-5s %-10v %-17s %-"}).ToSummaryRowString)
			if a.Response.Result == nil {
				fail("activation-list", resp, nil, "docs=true but the listed activation has no response result")
			}
		}
	}
	if row == "" {
		fail("activation-list", resp, nil, "activation %s not in %v", id, ids)
	}
	pass("activation-list", step{"status": resp.StatusCode, "ids": ids, "row": row})

	// wsk activation get --last NAME: the newest activation comes first.
	acts, resp, err = client.Activations.List(&whisk.ActivationListOptions{Name: name, Limit: 1})
	expectOK("activation-last", resp, err, http.StatusOK)
	strict("activation-last", resp, &[]whisk.Activation{})
	if len(acts) != 1 || acts[0].ActivationID != id {
		fail("activation-last", resp, nil, "limit=1 gave %d activations, want only the newest, %s", len(acts), id)
	}
	pass("activation-last", step{"status": resp.StatusCode, "activation_id": acts[0].ActivationID})

	// skip=1 and a since/upto window (wsk activation list --skip 1 --since ... --upto ...)
	acts, resp, err = client.Activations.List(&whisk.ActivationListOptions{Name: name, Limit: 5, Skip: 1,
		Since: started.UnixMilli() - 5000, Upto: time.Now().UnixMilli() + 5000})
	expectOK("activation-list-window", resp, err, http.StatusOK)
	strict("activation-list-window", resp, &[]whisk.Activation{})
	if len(acts) != len(ids)-1 || (len(acts) > 0 && acts[0].ActivationID != ids[1]) {
		fail("activation-list-window", resp, nil, "skip=1 gave %d activations, want %v without the first", len(acts), ids)
	}
	acts2, resp, err := client.Activations.List(&whisk.ActivationListOptions{Name: name, Limit: 5, Since: time.Now().UnixMilli() + 60000})
	expectOK("activation-list-window", resp, err, http.StatusOK)
	if len(acts2) != 0 {
		fail("activation-list-window", resp, nil, "since=<future> gave %d activations", len(acts2))
	}
	pass("activation-list-window", step{"status": resp.StatusCode, "skipped": len(acts)})

	// wsk activation list (no name, no docs)
	acts, resp, err = client.Activations.List(&whisk.ActivationListOptions{Limit: 30})
	expectOK("activation-list-all", resp, err, http.StatusOK)
	strict("activation-list-all", resp, &[]whisk.Activation{})
	listed := false
	for _, a := range acts {
		listed = listed || a.ActivationID == id
	}
	if !listed {
		fail("activation-list-all", resp, nil, "activation %s not in the %d listed", id, len(acts))
	}
	pass("activation-list-all", step{"status": resp.StatusCode, "count": len(acts)})

	// wsk activation logs ID
	logs, resp, err := client.Activations.Logs(id)
	expectOK("activation-logs", resp, err, http.StatusOK)
	strict("activation-logs", resp, &whisk.Activation{})
	if !strings.Contains(strings.Join(logs.Logs, "\n"), "hello: greeting Ada") {
		fail("activation-logs", resp, nil, "logs %q lack %q", logs.Logs, "hello: greeting Ada")
	}
	pass("activation-logs", step{"status": resp.StatusCode, "logs": logs.Logs})

	// wsk activation result ID
	result, resp, err := client.Activations.Result(id)
	expectOK("activation-result", resp, err, http.StatusOK)
	strict("activation-result", resp, &whisk.Response{})
	if !result.Success || result.Status != "success" {
		fail("activation-result", resp, nil, "response %+v", result)
	}
	wantGreeting("activation-result", resp, resultOf(result))
	pass("activation-result", step{"status": resp.StatusCode, "result": resultOf(result)})

	// wsk action invoke NAME (non-blocking): 202 {"activationId": ...}
	res, resp, err = client.Actions.Invoke(name, params, false, false)
	expectOK("invoke-nonblocking", resp, err, http.StatusAccepted)
	asyncID, _ := res["activationId"].(string)
	if asyncID == "" || asyncID == id {
		fail("invoke-nonblocking", resp, nil, "activationId %q", asyncID)
	}
	pass("invoke-nonblocking", step{"status": resp.StatusCode, "activation_id": asyncID})

	// wsk activation get ID until it is there (404 until the record is written).
	deadline := time.Now().Add(*pollTimeout)
	polls, notFound := 0, 0
	for {
		polls++
		a, resp, err := client.Activations.Get(asyncID)
		if err == nil {
			expectOK("activation-poll", resp, err, http.StatusOK)
			strict("activation-poll", resp, &whisk.Activation{})
			if a.ActivationID != asyncID || !a.Response.Success {
				fail("activation-poll", resp, nil, "activation %+v", a)
			}
			wantGreeting("activation-poll", resp, resultOf(&a.Response))
			pass("activation-poll", step{"status": resp.StatusCode, "activation_id": asyncID, "polls": polls, "not_found": notFound})
			break
		}
		expectAPIError("activation-poll", resp, err, http.StatusNotFound)
		notFound++
		if time.Now().After(deadline) {
			fail("activation-poll", resp, err, "activation %s not there after %s", asyncID, *pollTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Errors: a missing action, a missing activation.
	_, resp, err = client.Actions.Invoke("missing-"+name, params, true, true)
	pass("invoke-missing", expectAPIError("invoke-missing", resp, err, http.StatusNotFound))

	_, resp, err = client.Activations.Get("00000000000000000000000000000000")
	pass("activation-missing", expectAPIError("activation-missing", resp, err, http.StatusNotFound))

	if *apperrPath != "" {
		apperr(client, name+"-apperr", params)
	}

	// Optional: wsk list / wsk namespace get also list packages, triggers and rules.
	// Reported (ok false, optional true) but never fatal.
	optional := func(stepName string, resp *http.Response, err error) {
		s := step{"optional": true}
		addResp(s, resp)
		if err != nil {
			s["step"], s["ok"], s["client_error"] = stepName, false, err.Error()
			emit(s)
			return
		}
		pass(stepName, s)
	}
	_, resp, err = client.Packages.List(&whisk.PackageListOptions{Limit: 30})
	optional("packages-list", resp, err)
	_, resp, err = client.Triggers.List(&whisk.TriggerListOptions{Limit: 30})
	optional("triggers-list", resp, err)
	_, resp, err = client.Rules.List(&whisk.RuleListOptions{Limit: 30})
	optional("rules-list", resp, err)

	// wsk action delete NAME, then get/delete give 404.
	resp, err = client.Actions.Delete(name)
	expectOK("delete", resp, err, http.StatusOK)
	strict("delete", resp, &whisk.Action{})
	pass("delete", step{"status": resp.StatusCode})

	_, resp, err = client.Actions.Get(name, false)
	pass("get-deleted", expectAPIError("get-deleted", resp, err, http.StatusNotFound))

	resp, err = client.Actions.Delete(name)
	pass("delete-again", expectAPIError("delete-again", resp, err, http.StatusNotFound))

	pass("done", step{"action": name})
}

// apperr checks what client-go makes of an application error (result {"error": ...}):
// OpenWhisk answers a blocking invoke with 502 and the result (result=true) or the whole
// activation (result=false); client-go turns both into a WskError with ApplicationError.
func apperr(client *whisk.Client, name string, params map[string]interface{}) {
	wasm, err := os.ReadFile(*apperrPath)
	if err != nil {
		fail("apperror-setup", nil, err, "cannot read --apperror-wasm")
	}
	code := base64.StdEncoding.EncodeToString(wasm)
	_, resp, err := client.Actions.Insert(&whisk.Action{Name: name, Namespace: "_", Exec: &whisk.Exec{Kind: "wasm:wasi", Code: &code}}, true)
	expectOK("apperror-create", resp, err, http.StatusOK)
	pass("apperror-create", step{"status": resp.StatusCode, "name": name})

	check := func(stepName string, result bool) (map[string]interface{}, *http.Response, *whisk.WskError) {
		res, resp, err := client.Actions.Invoke(name, params, true, result)
		if err == nil {
			fail(stepName, resp, nil, "expected an application error")
		}
		werr, ok := err.(*whisk.WskError)
		if !ok || !werr.ApplicationError {
			fail(stepName, resp, err, "client-go did not see an application error")
		}
		if resp == nil || resp.StatusCode != http.StatusBadGateway {
			fail(stepName, resp, err, "expected HTTP 502")
		}
		if !strings.Contains(werr.Error(), "something went wrong") {
			fail(stepName, resp, err, "error message lacks the action's error")
		}
		return res, resp, werr
	}

	_, resp, werr := check("apperror-invoke-result", true)
	pass("apperror-invoke-result", step{"status": resp.StatusCode, "exit_code": werr.ExitCode, "wsk_message": werr.Error()})

	res, resp, werr := check("apperror-invoke-blocking", false)
	var act whisk.Activation
	strict("apperror-invoke-blocking", resp, &act)
	if act.ActivationID == "" || act.Response.Success || act.Response.Status != "application error" {
		fail("apperror-invoke-blocking", resp, nil, "activation %+v", act)
	}
	if res["activationId"] != act.ActivationID {
		fail("apperror-invoke-blocking", resp, nil, "client-go did not parse the activation out of the 502 body")
	}
	pass("apperror-invoke-blocking", step{"status": resp.StatusCode, "exit_code": werr.ExitCode, "wsk_message": werr.Error(),
		"activation_id": act.ActivationID, "response_status": act.Response.Status})

	a, resp, err := client.Activations.Get(act.ActivationID)
	expectOK("apperror-activation-get", resp, err, http.StatusOK)
	if a.StatusCode != 1 {
		fail("apperror-activation-get", resp, nil, "wsk status code %d (from status %q), want 1 (application error)", a.StatusCode, a.Response.Status)
	}
	pass("apperror-activation-get", step{"status": resp.StatusCode, "response_status": a.Response.Status})

	resp, err = client.Actions.Delete(name)
	expectOK("apperror-delete", resp, err, http.StatusOK)
	pass("apperror-delete", step{"status": resp.StatusCode})
}
