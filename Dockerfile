# syntax=docker/dockerfile:1
# pywhisk: one image for every role; the command picks it.
#   docker run -p 3233:3233 pywhisk                    standalone (in-memory bus, SQLite in /data)
#   docker run pywhisk controller --id 0 --port 3233   a controller (Kafka + CouchDB from PYWHISK_*)
#   docker run pywhisk invoker --id 0                  an invoker (no HTTP port)
# docker-compose.yml runs the distributed mode with it; docs/deployment.md lists the settings.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A non-root user owns the data directory: the SQLite store in standalone mode, the compiled
# WebAssembly module cache in every role that runs actions. Numeric ids, so that Kubernetes'
# runAsNonRoot can check USER.
RUN groupadd --system --gid 10001 pywhisk \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/pywhisk pywhisk \
    && mkdir -m 0700 /data \
    && chown 10001:10001 /data

WORKDIR /src

# The dependencies first, read from pyproject.toml, so that this large layer is rebuilt only when
# they change, not on every source edit (setuptools cannot install the project itself from
# pyproject.toml alone, hence two steps).
COPY pyproject.toml ./
# The python-wasm extra too: invokers build the Python-on-WASM runner with componentize-py.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['python-wasm']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then pywhisk itself (the packages pyproject.toml lists) without dependencies; `pip check` fails
# the build if the step above missed one.
COPY README.md ./
COPY pywhisk ./pywhisk
COPY controller ./controller
COPY invoker ./invoker
COPY executor_wasm ./executor_wasm
COPY executor_docker ./executor_docker
COPY loadgen ./loadgen
COPY launcher ./launcher
COPY pywsk ./pywsk
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && pip check

USER 10001:10001
WORKDIR /home/pywhisk
ENV PYWHISK_HOST=0.0.0.0 \
    PYWHISK_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 3233

ENTRYPOINT ["pywhisk"]
CMD ["standalone"]
