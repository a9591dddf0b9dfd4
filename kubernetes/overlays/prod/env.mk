# The production environment, for the overlays' Makefiles (see ../../base/Makefile).
SECRET_PATH := secret/rubin/usdf-consdb
CONSDB_URL_KEY := consdb-url
KUBE_CONTEXT ?= usdf-consdb
