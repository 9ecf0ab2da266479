// os/exec: Go starts a child with clone(CLONE_VM|CLONE_VFORK), execs itself, waits for it.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println("child got", os.Args[1])
		os.Exit(5)
	}
	out, err := exec.Command("/proc/self/exe", "hello").Output()
	fmt.Printf("output %q err %v\n", out, err)
}
