package tlsfiles_test

import (
	"fmt"

	"github.com/firstunicorn/messagekit-go/pkg/tlsfiles"
)

// The files are read when Load is called, and its error names the file
// that is missing or wrong, never a key.
func ExampleConfig_Load() {
	_, err := tlsfiles.Config{CAFile: "/etc/messagekit/tls/missing-ca.pem"}.Load()
	fmt.Println(err)
	// Output: read CA file: open /etc/messagekit/tls/missing-ca.pem: no such file or directory
}
