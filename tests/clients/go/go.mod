module pywhisk-owclient

go 1.21

require github.com/apache/openwhisk-client-go v0.0.0-20210313152306-ea317ea2794c

require (
	github.com/cloudfoundry/jibber_jabber v0.0.0-20151120183258-bcc4c8345a21 // indirect
	github.com/fatih/color v1.10.0 // indirect
	github.com/google/go-querystring v1.0.0 // indirect
	github.com/hokaccha/go-prettyjson v0.0.0-20210113012101-fb4e108d2519 // indirect
	github.com/mattn/go-colorable v0.1.8 // indirect
	github.com/mattn/go-isatty v0.0.12 // indirect
	github.com/nicksnyder/go-i18n v1.10.1 // indirect
	github.com/pelletier/go-toml v1.2.0 // indirect
	golang.org/x/sys v0.0.0-20210112080510-489259a85091 // indirect
	gopkg.in/yaml.v2 v2.3.0 // indirect
)
