// The "events" scenario: OpenWhisk's event model driven through client-go as wsk drives it — a trigger with two
// rules (one to a WASM action, one to a Python action on Docker), rule disable/enable and status, a fire and the
// trigger activation's logs (one JSON line per rule), the rule activations' records, and a feed: `wsk trigger
// create T --feed /whisk.system/alarms/interval -p minutes 1` (the trigger, then the feed action invoked with
// lifecycleEvent CREATE, triggerName and authKey), READ, and DELETE.
//
//	owclient-go -scenario events -apihost URL -auth UUID:KEY -echo-wasm echo.wasm [-python-kind KIND] [-name NAME]
package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"time"

	"github.com/apache/openwhisk-client-go/whisk"
)

// activationRecord polls GET /activations/ID until the record exists (non-blocking activations are recorded
// when they end).
func activationRecord(client *whisk.Client, name, id string) *whisk.Activation {
	deadline := time.Now().Add(60 * time.Second)
	for {
		activation, resp, err := client.Activations.Get(id)
		if err == nil && resp != nil && resp.StatusCode == http.StatusOK {
			return activation
		}
		if time.Now().After(deadline) {
			fail(name, resp, err, "no record of %s", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// feed invokes a feed action as wsk does for `trigger create/get/delete --feed`.
func feed(client *whisk.Client, event, namespace, trigger string, params map[string]interface{}) (map[string]interface{}, *http.Response, error) {
	payload := map[string]interface{}{"lifecycleEvent": event, "triggerName": "/" + namespace + "/" + trigger, "authKey": *auth}
	for k, v := range params {
		payload[k] = v
	}
	client.Config.Namespace = "whisk.system"
	defer func() { client.Config.Namespace = "_" }()
	return client.Actions.Invoke("alarms/interval", payload, true, false)
}

func events() {
	if *apihost == "" || *auth == "" || *echoPath == "" {
		fmt.Fprintln(os.Stderr, "usage: owclient-go -scenario events -apihost URL -auth UUID:KEY -echo-wasm echo.wasm [-python-kind KIND] [-name NAME]")
		os.Exit(2)
	}
	name := *actionName
	if name == "" {
		name = fmt.Sprintf("owevents-go-%06x", rand.New(rand.NewSource(time.Now().UnixNano())).Intn(1<<24))
	}
	kind := *pythonKind
	if kind == "" {
		kind = "python:3.11"
	}
	client := newClient(*apihost, *auth)
	namespaces, resp, err := client.Namespaces.List()
	client.Config.Namespace = "_"
	expectOK("namespaces", resp, err, http.StatusOK)
	namespace := namespaces[0].Name
	pass("namespaces", step{"namespace": namespace})

	wasm, py, trigger := name+"-wasm", name+"-py", name+"-t"
	pyCode := "def main(args):\n    return {'python': args.get('x'), 'from': args.get('from')}\n"
	_, resp, err = client.Actions.Insert(&whisk.Action{Name: wasm, Namespace: "_", Exec: &whisk.Exec{Kind: "wasm:wasi", Code: wasmCode(*echoPath)}}, false)
	expectOK("actions", resp, err, http.StatusOK)
	_, resp, err = client.Actions.Insert(&whisk.Action{Name: py, Namespace: "_", Exec: &whisk.Exec{Kind: kind, Code: &pyCode}}, false)
	expectOK("actions", resp, err, http.StatusOK)
	pass("actions", nil)

	// wsk trigger create T -p from trigger
	created, resp, err := client.Triggers.Insert(&whisk.Trigger{Name: trigger, Namespace: "_",
		Parameters: whisk.KeyValueArr{{Key: "from", Value: "trigger"}}}, false)
	expectOK("trigger-create", resp, err, http.StatusOK)
	strict("trigger-create", resp, &whisk.Trigger{})
	pass("trigger-create", step{"version": created.Version})

	// wsk rule create R T A (wsk sends fully qualified names)
	for i, action := range []string{wasm, py} {
		rule := &whisk.Rule{Name: fmt.Sprintf("%s-r%d", name, i+1), Trigger: "/" + namespace + "/" + trigger, Action: "/" + namespace + "/" + action}
		_, resp, err = client.Rules.Insert(rule, false)
		expectOK("rule-create", resp, err, http.StatusOK)
		strict("rule-create", resp, &whisk.Rule{})
	}
	pass("rule-create", nil)
	rule, resp, err := client.Rules.Get(name + "-r1")
	expectOK("rule-get", resp, err, http.StatusOK)
	strict("rule-get", resp, &whisk.Rule{})
	pass("rule-get", step{"status": rule.Status, "trigger": rule.Trigger, "action": rule.Action})

	// wsk rule disable / enable
	_, resp, err = client.Rules.SetState(name+"-r2", "inactive")
	expectOK("rule-disable", resp, err, http.StatusOK, http.StatusAccepted)
	disabled, resp, err := client.Rules.Get(name + "-r2")
	expectOK("rule-disable", resp, err, http.StatusOK)
	pass("rule-disable", step{"status": disabled.Status})
	_, resp, err = client.Rules.SetState(name+"-r2", "active")
	expectOK("rule-enable", resp, err, http.StatusOK, http.StatusAccepted)
	enabled, resp, err := client.Rules.Get(name + "-r2")
	expectOK("rule-enable", resp, err, http.StatusOK)
	pass("rule-enable", step{"status": enabled.Status})

	// wsk trigger fire T -p x 1
	fired, resp, err := client.Triggers.Fire(trigger, map[string]interface{}{"x": 1})
	expectOK("trigger-fire", resp, err, http.StatusAccepted)
	pass("trigger-fire", step{"activation_id": fired.ActivationId, "status": resp.StatusCode})

	record := activationRecord(client, "trigger-record", fired.ActivationId)
	var lines []map[string]interface{}
	for _, line := range record.Logs {
		var parsed map[string]interface{}
		if json.Unmarshal([]byte(line), &parsed) != nil {
			fail("trigger-record", nil, nil, "log line %q is not JSON", line)
		}
		lines = append(lines, parsed)
	}
	pass("trigger-record", step{"name": record.Name, "logs": lines})

	results := map[string]interface{}{}
	for _, line := range lines {
		id, _ := line["activationId"].(string)
		activation := activationRecord(client, "rule-activations", id)
		results[activation.Name] = map[string]interface{}{"result": activation.Response.Result, "cause": activation.Cause}
	}
	pass("rule-activations", step{"results": results})

	// wsk trigger create ALARM --feed /whisk.system/alarms/interval -p minutes 1
	alarm := name + "-alarm"
	_, resp, err = client.Triggers.Insert(&whisk.Trigger{Name: alarm, Namespace: "_",
		Annotations: whisk.KeyValueArr{{Key: "feed", Value: "/whisk.system/alarms/interval"}}}, false)
	expectOK("feed-create", resp, err, http.StatusOK)
	feedCreated, resp, err := feed(client, "CREATE", namespace, alarm, map[string]interface{}{"minutes": 1})
	expectOK("feed-create", resp, err, http.StatusOK)
	pass("feed-create", step{"response": feedCreated["response"]})
	feedRead, resp, err := feed(client, "READ", namespace, alarm, nil)
	expectOK("feed-get", resp, err, http.StatusOK)
	pass("feed-get", step{"response": feedRead["response"]})
	_, resp, err = feed(client, "DELETE", namespace, alarm, nil)
	expectOK("feed-delete", resp, err, http.StatusOK)
	pass("feed-delete", nil)

	for _, r := range []string{name + "-r1", name + "-r2"} {
		resp, err = client.Rules.Delete(r)
		expectOK("cleanup", resp, err, http.StatusOK)
	}
	for _, t := range []string{trigger, alarm} {
		_, resp, err = client.Triggers.Delete(t)
		expectOK("cleanup", resp, err, http.StatusOK)
	}
	for _, a := range []string{wasm, py} {
		resp, err = client.Actions.Delete(a)
		expectOK("cleanup", resp, err, http.StatusOK)
	}
	pass("cleanup", nil)
	_, resp, err = client.Triggers.Get(trigger)
	pass("trigger-deleted", expectAPIError("trigger-deleted", resp, err, http.StatusNotFound))
	pass("done", step{"name": name})
}
