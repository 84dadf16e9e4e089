// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library
// Flux, kpt and Config Sync decide health with) computes for Kubernetes objects.
//
// It reads one object, or a List of them (`kubectl get -o json` output), as JSON or YAML
// from stdin or from the files named as arguments, and prints one JSON line per object:
//
//	{"kind":"LarkApp","namespace":"ns","name":"app","status":"Current","message":"Resource is Ready"}
//
// Exit status: 0 when every object was computed, 1 when one could not be, 2 on bad input.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// Set at build time (hack/controlplane/build.sh) to the cli-utils version in go.mod.
var version = "unknown"

type line struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
	Error     string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Printf("kstatus (sigs.k8s.io/cli-utils %s)\n", version)
		return
	}
	inputs := os.Args[1:]
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	failed := false
	for _, path := range inputs {
		objs, err := read(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", path, err)
			os.Exit(2)
		}
		for _, obj := range objs {
			if !emit(obj) {
				failed = true
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

// read returns the objects in one input: the object itself, or the items of a List.
func read(path string) ([]*unstructured.Unstructured, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	text, err := yaml.YAMLToJSON(data) // JSON is YAML: both go through here
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(text); err != nil {
		return nil, err
	}
	if !u.IsList() {
		return []*unstructured.Unstructured{u}, nil
	}
	list, err := u.ToList()
	if err != nil {
		return nil, err
	}
	objs := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		objs[i] = &list.Items[i]
	}
	return objs, nil
}

func emit(u *unstructured.Unstructured) bool {
	out := line{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	res, err := status.Compute(u)
	if err != nil {
		out.Error = err.Error()
	} else {
		out.Status, out.Message = string(res.Status), res.Message
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	return err == nil
}
